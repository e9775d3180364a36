"""Classification metrics (torchmetrics, synced across ranks) and the trivial baselines to read them against."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchmetrics import ConfusionMatrix, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassRecall


def make_metrics(num_classes: int) -> MetricCollection:
    """macro-F1 (the monitored metric), macro-recall (TweetEval's official one), accuracy, per-class F1, confusion."""
    return MetricCollection({
        "macro_f1": MulticlassF1Score(num_classes, average="macro"),
        "macro_recall": MulticlassRecall(num_classes, average="macro"),
        "accuracy": MulticlassAccuracy(num_classes, average="micro"),
        "class_f1": MulticlassF1Score(num_classes, average=None),
        "confusion": ConfusionMatrix(task="multiclass", num_classes=num_classes),
    }, compute_groups=False)


def scalar_metrics(values: dict[str, torch.Tensor], class_names: tuple[str, ...]) -> dict[str, float]:
    """Flatten computed metrics to loggable scalars: per-class F1 becomes `f1_<class>`; the matrix is left out."""
    out = {k: float(v) for k, v in values.items() if v.ndim == 0}
    out.update({f"f1_{name}": float(v) for name, v in zip(class_names, values["class_f1"])})
    return out


def metrics_record(values: dict[str, torch.Tensor], class_names: tuple[str, ...]) -> dict[str, Any]:
    """Computed metrics as plain numbers and lists (for checkpoints, JSON files and model cards)."""
    record: dict[str, Any] = {k: float(v) for k, v in values.items() if v.ndim == 0}
    record["class_names"] = list(class_names)
    record["class_f1"] = [float(v) for v in values["class_f1"]]
    record["confusion"] = values["confusion"].long().tolist()
    record["tweets"] = int(values["confusion"].sum())
    return record


def trivial_baselines(class_counts: Sequence[int] | torch.Tensor,
                      class_names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """macro-F1, macro-recall, accuracy and per-class F1 of always predicting the most frequent class, and of
    uniform random guessing (expected values), on a split with these true class counts."""
    counts = torch.as_tensor(class_counts).double()
    prior, k = counts / counts.sum(), len(counts)
    majority = int(counts.argmax())
    # Always-majority: recall 1 and precision = prior on that class, 0 elsewhere.
    f1_major = torch.zeros(k, dtype=torch.double)
    f1_major[majority] = 2 * prior[majority] / (1 + prior[majority])
    # Uniform random: per class, precision = prior and recall = 1/k in expectation.
    f1_random = (2 * prior / k / (prior + 1 / k)).where(prior > 0, torch.zeros_like(prior))
    return {
        f"always {class_names[majority]}": {"macro_f1": float(f1_major.mean()), "macro_recall": 1 / k,
                                            "accuracy": float(prior[majority]), "class_f1": f1_major.tolist()},
        "uniform random (expected)": {"macro_f1": float(f1_random.mean()), "macro_recall": 1 / k,
                                      "accuracy": 1 / k, "class_f1": f1_random.tolist()},
    }
