"""The `examples` callback: what TensorBoard shows of the model's answers beyond scalars.

At every validation, a table of the first validation tweets with their true class, the predicted class and the
three probabilities (TEXT tab, `val/examples`), so one can watch the answers change over training; and a custom
chart that draws the per-class F1 curves (`val/f1_<class>`) together (CUSTOM SCALARS tab).
"""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback


class ExamplePredictions(Callback):
    """Logs example predictions and a per-class F1 chart to TensorBoard.

    Args:
        count: Validation tweets shown (the first ones of the split, the same every time); 0 turns it off.
        max_chars: Tweets longer than this are shortened in the table.
    """

    def __init__(self, count: int = 8, max_chars: int = 140) -> None:
        self.count, self.max_chars = count, max_chars
        self.rows: dict[int, list[float]] = {}

    @staticmethod
    def _experiment(trainer: pl.Trainer):
        experiment = getattr(trainer.logger, "experiment", None)
        return experiment if hasattr(experiment, "add_text") else None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        experiment = self._experiment(trainer)
        if experiment is not None and trainer.is_global_zero and hasattr(experiment, "add_custom_scalars"):
            tags = [f"val/f1_{name}" for name in pl_module.task.class_names] + ["val/macro_f1"]
            experiment.add_custom_scalars({"per-class F1": {"validation": ["Multiline", tags]}})

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.rows = {}

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        # Rank zero's contiguous shard starts at index 0, so it sees the first tweets itself.
        if not self.count or not outputs:
            return
        probs = outputs["scores"].float().softmax(-1).tolist()
        for row, index in enumerate(batch["index"].tolist()):
            if index < self.count:
                self.rows[index] = probs[row]

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        experiment = self._experiment(trainer)
        if experiment is None or trainer.sanity_checking or not trainer.is_global_zero or not self.rows:
            return
        raw, names = trainer.datamodule.raw["validation"], pl_module.task.class_names
        header = "| # | tweet | truth | predicted | " + " | ".join(f"p({n})" for n in names) + " |"
        lines = [header, "|" + "---|" * (4 + len(names))]
        for index in sorted(self.rows):
            probs = self.rows[index]
            text = raw.texts[index]
            text = text if len(text) <= self.max_chars else text[: self.max_chars - 1] + "…"
            text = text.replace("|", "\\|").replace("\n", " ")
            truth = names[raw.sentiments[index]] if raw.sentiments is not None else "?"
            predicted = names[max(range(len(names)), key=probs.__getitem__)]
            mark = "" if truth == predicted else " ✗"
            lines.append(f"| {index} | {text} | {truth} | {predicted}{mark} | "
                         + " | ".join(f"{p:.3f}" for p in probs) + " |")
        experiment.add_text("val/examples", "\n".join(lines), global_step=trainer.global_step)
