"""Class-weighted training loss: each example's answer tokens weigh by its class's weight.

A counter to skewed training priors (train is 16/45/39 % negative/neutral/positive): with `balanced` weights
every class contributes the same total weight to the loss. Validation and test losses stay unweighted.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from sentiment_pl.errors import InputError
from sentiment_pl.model.objective import Head, supervised_targets


def weighted_completion_loss(hidden: torch.Tensor, labels: torch.Tensor, head: Head,
                             example_weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean cross-entropy over the supervised tokens; `hidden` [N, width]: the hidden states at
    `supervised_positions(labels)`; `example_weights` [batch] weighs every answer token of its example. With
    equal weights it is `completion_loss`."""
    rows, targets = supervised_targets(hidden, labels)
    token_loss = F.cross_entropy(head(hidden).float(), targets, reduction="none")
    weights = example_weights.to(token_loss.dtype)[rows]
    return (weights * token_loss).sum() / weights.sum()


def resolve_class_weights(setting: Sequence[float] | str, train_counts: Sequence[int] | None,
                          num_classes: int) -> torch.Tensor:
    """The weight of each class: given explicitly, or `balanced` = n / (classes * count of the class) on train,
    from the training examples of each class (`train_counts`; None when train is unlabeled)."""
    if isinstance(setting, str):
        if setting != "balanced":
            raise InputError(f"model.class_weights={setting!r}: use a list of {num_classes} numbers or 'balanced'")
        if not train_counts or not sum(train_counts):
            raise InputError("model.class_weights='balanced' needs the labeled train split")
        counts = torch.tensor(list(train_counts), dtype=torch.float64)
        if len(counts) != num_classes or (counts == 0).any():
            raise InputError(f"model.class_weights='balanced': a class has no training example "
                             f"(counts {counts.tolist()})")
        return (counts.sum() / (num_classes * counts)).float()
    weights = torch.tensor(list(setting), dtype=torch.float)
    if len(weights) != num_classes or (weights <= 0).any():
        raise InputError(f"model.class_weights={list(setting)} needs {num_classes} positive numbers, one per class")
    return weights
