"""Weight averaging that follows the weights closely early on and averages a whole plateau later."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import WeightAveraging
from torch.optim.swa_utils import get_ema_avg_fn


class EMAThenMeanAveraging(WeightAveraging):
    """An exponential moving average of the weights until `mean_from_epoch`, then their plain mean from there.

    Validation, checkpoints and test see the averaged weights, as with Lightning's `EMAWeightAveraging`, whose
    update this uses until `mean_from_epoch`. From then on every optimizer step's weights count alike (the
    mean of stochastic weight averaging, taken every step instead of every epoch), so a validation at epoch 3
    sees the mean of epochs 1 to 3 rather than the last few hundred steps. That suits a model whose validation
    score sits on a broad, noisy plateau before it overfits: the best checkpoint is then its mean. (On
    the quality recipe it raised validation macro-F1 in three seeds and lowered test's, whose class mix
    validation does not share; see the README.)

    Args:
        decay: the moving average's decay per optimizer step before `mean_from_epoch`.
        mean_from_epoch: where the plain mean starts, in epochs (fractions allowed); it restarts from that
            step's weights.
    """

    def __init__(self, decay: float = 0.998, mean_from_epoch: float = 1.0) -> None:
        if not 0 <= decay < 1:
            raise ValueError(f"EMAThenMeanAveraging: decay={decay} must be in [0, 1)")
        if mean_from_epoch < 0:
            raise ValueError(f"EMAThenMeanAveraging: mean_from_epoch={mean_from_epoch} must not be negative")
        super().__init__(avg_fn=self._average)
        self._ema = get_ema_avg_fn(decay)  # the update Lightning's EMAWeightAveraging uses
        self.mean_from_epoch = mean_from_epoch
        self.mean_from_step: int | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Known only once the training dataloader exists; recomputed the same way on resume.
        steps_per_epoch = trainer.num_training_batches // trainer.accumulate_grad_batches
        self.mean_from_step = round(self.mean_from_epoch * steps_per_epoch)

    def _average(self, average: torch.Tensor, current: torch.Tensor, updates: torch.Tensor) -> torch.Tensor:
        # `updates` counts the updates before this one; the averaging model is updated after every optimizer
        # step from the first, so it is also this step's zero-based index.
        assert self.mean_from_step is not None, "the averaging start is set when training starts"
        since_start = int(updates) - self.mean_from_step
        if since_start < 0:
            return self._ema(average, current, updates)
        return average + (current - average) / (since_start + 1)
