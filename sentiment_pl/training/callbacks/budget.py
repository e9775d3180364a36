"""The `throughput` and `step_budget` callbacks the CLI adds to every run: how fast it trains, and how many
optimizer steps an epoch gives it."""

from __future__ import annotations

import logging
import math
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, ThroughputMonitor
from lightning.pytorch.utilities import rank_zero_warn

log = logging.getLogger(__name__)


def _batch_size(batch: dict) -> int:
    return int(batch["input_ids"].shape[0])


def _real_tokens(batch: dict) -> int:
    return int(batch["attention_mask"].sum())


class Throughput(ThroughputMonitor):
    """Logs training samples/s and tokens/s (real tokens, padding excluded), per device and in total.

    Args:
        window_size: Number of batches the rates are averaged over.
    """

    def __init__(self, window_size: int = 20) -> None:
        super().__init__(batch_size_fn=_batch_size, length_fn=_real_tokens, window_size=window_size)


class StepBudget(Callback):
    """At fit start, reports samples per optimizer step and optimizer steps per epoch for the actual world size,
    and warns when an epoch has too few optimizer steps to train well.

    Args:
        min_steps_per_epoch: Warn below this many optimizer steps per epoch.
    """

    def __init__(self, min_steps_per_epoch: int = 100) -> None:
        self.min_steps_per_epoch = min_steps_per_epoch
        self.report: dict[str, Any] = {}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        dm = trainer.datamodule
        accumulate = trainer.accumulate_grad_batches
        per_step = dm.batch_size * accumulate * trainer.world_size
        batches = len(dm.train_dataloader())  # per rank
        if isinstance(trainer.limit_train_batches, int):
            batches = min(batches, trainer.limit_train_batches)
        elif trainer.limit_train_batches < 1:
            batches = int(batches * trainer.limit_train_batches)
        steps = math.ceil(batches / accumulate)
        self.report = {"samples_per_optimizer_step": per_step, "optimizer_steps_per_epoch": steps,
                       "world_size": trainer.world_size, "accumulate_grad_batches": accumulate,
                       "batch_size": dm.batch_size}
        text = (f"{per_step} samples per optimizer step (batch {dm.batch_size} x accumulation {accumulate} x "
                f"{trainer.world_size} device(s)); {steps} optimizer steps per epoch")
        if trainer.is_global_zero:
            log.info(text)
            experiment = getattr(trainer.logger, "experiment", None)
            if hasattr(experiment, "add_text"):
                experiment.add_text("run/step_budget", text)
        if steps < self.min_steps_per_epoch:
            rank_zero_warn(f"only {steps} optimizer steps per epoch (< {self.min_steps_per_epoch}): training will "
                           "barely move; lower trainer.accumulate_grad_batches or data.batch_size")
