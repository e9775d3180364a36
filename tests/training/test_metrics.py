"""Metrics equal sklearn's on the same predictions; the trivial baselines match simulation."""

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score

from sentiment_pl.data.prompts import CLASS_NAMES
from sentiment_pl.training.metrics import make_metrics, metrics_record, scalar_metrics, trivial_baselines


def test_metrics_equal_sklearn_over_several_updates():
    rng = np.random.default_rng(0)
    truth = rng.choice(3, size=1000, p=[0.2, 0.5, 0.3])
    preds = np.where(rng.random(1000) < 0.6, truth, rng.integers(0, 3, 1000))
    metrics = make_metrics(3)
    for chunk in np.array_split(np.arange(1000), 7):
        metrics.update(torch.tensor(preds[chunk]), torch.tensor(truth[chunk]))
    values = metrics.compute()
    scalars = scalar_metrics(values, CLASS_NAMES)
    assert scalars["macro_f1"] == pytest.approx(f1_score(truth, preds, average="macro"), abs=1e-6)
    assert scalars["macro_recall"] == pytest.approx(recall_score(truth, preds, average="macro"), abs=1e-6)
    assert scalars["accuracy"] == pytest.approx(accuracy_score(truth, preds), abs=1e-6)
    for name, f1 in zip(CLASS_NAMES, f1_score(truth, preds, average=None)):
        assert scalars[f"f1_{name}"] == pytest.approx(f1, abs=1e-6)
    assert values["confusion"].tolist() == confusion_matrix(truth, preds).tolist()


def test_trivial_baselines_match_sklearn_and_simulation():
    truth = np.array([0] * 320 + [1] * 480 + [2] * 190)
    baselines = trivial_baselines(torch.tensor([320, 480, 190]), CLASS_NAMES)
    always = baselines["always neutral"]
    assert always["macro_f1"] == pytest.approx(f1_score(truth, np.ones_like(truth), average="macro"), abs=1e-9)
    assert always["macro_recall"] == pytest.approx(recall_score(truth, np.ones_like(truth), average="macro"))
    assert always["accuracy"] == pytest.approx(accuracy_score(truth, np.ones_like(truth)))
    assert always["class_f1"] == pytest.approx(f1_score(truth, np.ones_like(truth), average=None).tolist())
    rng = np.random.default_rng(0)
    guesses = [rng.integers(0, 3, len(truth)) for _ in range(200)]
    random = baselines["uniform random (expected)"]
    assert random["macro_f1"] == pytest.approx(np.mean([f1_score(truth, g, average="macro") for g in guesses]),
                                               abs=0.005)
    assert random["accuracy"] == pytest.approx(np.mean([accuracy_score(truth, g) for g in guesses]), abs=0.005)
    simulated_class_f1 = np.mean([f1_score(truth, g, average=None) for g in guesses], axis=0)
    assert random["class_f1"] == pytest.approx(simulated_class_f1.tolist(), abs=0.01)


def test_metrics_record_is_plain_numbers_matching_the_computed_values():
    metrics = make_metrics(3)
    metrics.update(torch.tensor([0, 1, 1, 2, 2, 0]), torch.tensor([0, 1, 2, 2, 1, 1]))
    values = metrics.compute()
    record = metrics_record(values, CLASS_NAMES)
    assert record["confusion"] == values["confusion"].tolist() and record["tweets"] == 6
    assert record["macro_f1"] == pytest.approx(float(values["macro_f1"]))
    assert record["class_f1"] == pytest.approx(values["class_f1"].tolist())
    assert json.loads(json.dumps(record)) == record
