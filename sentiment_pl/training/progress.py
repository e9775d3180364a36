"""The progress bar: Lightning's rich bar, counting what the run will actually do."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import RichProgressBar


class Progress(RichProgressBar):
    """Lightning's rich progress bar, with three fixes for step-budget runs: the training bar's total is the
    batches the run will do in this epoch (up to `max_steps`, with gradient accumulation and a resume's batches
    counted), the title reads `Epoch 0` instead of `Epoch 0/-2` when only `max_steps` bounds the run, and the
    logger's version (`v_num`) is not shown.
    """

    @property
    def total_train_batches(self) -> int | float:
        # Lightning's own bound counts optimizer steps as if they were batches, and forgets a resume's done batches.
        trainer = self.trainer
        total = trainer.num_training_batches
        if trainer.max_steps is None or trainer.max_steps < 0 or total == float("inf"):
            return total
        done = trainer.fit_loop.epoch_loop.batch_progress.current.ready
        left = (trainer.max_steps - trainer.global_step) * trainer.accumulate_grad_batches
        return min(total, done + left)

    def _get_train_description(self, current_epoch: int) -> str:
        if self.trainer.max_epochs is None or self.trainer.max_epochs < 0:
            return f"{'Epoch ' + str(current_epoch):{len(self.validation_description)}}"
        return super()._get_train_description(current_epoch)

    def get_metrics(self, trainer, pl_module) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items
