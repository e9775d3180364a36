"""The result a user reads at the end of a run: one table of the split's metrics beside the trivial baselines.

`fit` prints it once, at the end, for the best validation (the one the best checkpoint holds) with that
checkpoint's path, and a line when `trainer.max_time` ended training before its steps did; `validate` and `test`
print it once for their split. `test` of a checkpoint also writes its metrics beside the checkpoint
(`<checkpoint>.test.json`), where `export` finds them for the model card.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from sentiment_pl.training.checkpointing import checkpoint_dirs
from sentiment_pl.training.metrics import trivial_baselines
from sentiment_pl.training.schedule import limit_seconds, time_limit

log = logging.getLogger(__name__)

TEST_RESULTS_SUFFIX = ".test.json"


def format_table(record: dict[str, Any], title: str) -> str:
    """The model's macro-F1, macro-recall, accuracy and per-class F1 beside always-majority and uniform random."""
    names = record["class_names"]
    counts = [sum(row) for row in record["confusion"]]
    rows = {"this model": record, **trivial_baselines(counts, tuple(names))}
    heads = ["macro-F1", "macro-recall", "accuracy", *(f"F1 {n}" for n in names)]
    width = max(len(r) for r in rows) + 2
    lines = [title, " " * width + "  ".join(f"{h:>{max(9, len(h))}s}" for h in heads)]
    for name, m in rows.items():
        cells = [m["macro_f1"], m["macro_recall"], m["accuracy"], *m["class_f1"]]
        lines.append(f"{name:{width}s}" + "  ".join(f"{v:>{max(9, len(h))}.4f}" for v, h in zip(cells, heads)))
    return "\n".join(lines)


def test_results_path(ckpt_path: str | Path) -> Path:
    """Where `test` leaves a checkpoint's test metrics: `best-step700.ckpt` -> `best-step700.test.json`."""
    path = Path(ckpt_path)
    return path.with_name(path.stem + TEST_RESULTS_SUFFIX)


class ResultTable(Callback):
    """Prints the result table once per run: after `fit` for its best validation (with the best checkpoint's
    path), after `validate` and `test` for their split. `test` with `--ckpt_path` also writes the metrics to
    `<checkpoint>.test.json` beside the checkpoint (read by `export` for the model card).

    Args:
        enabled: Print the table (and write the test metrics).
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.best: dict[str, Any] | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.best = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        record = pl_module.recorded.get("val")
        if not self.enabled or trainer.sanity_checking or record is None:
            return
        if trainer.state.fn == "fit":
            # Strictly better only, as ModelCheckpoint(mode="max") keeps the first of equal scores.
            if self.best is None or record["macro_f1"] > self.best["macro_f1"]:
                self.best = record
        elif trainer.is_global_zero:
            print(format_table(record, _title("validation", record, trainer.ckpt_path)), flush=True)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.enabled or not trainer.is_global_zero:
            return
        best = getattr(trainer.checkpoint_callback, "best_model_path", "") or None
        if self.best is None:
            print(f"no validation ran; checkpoints in {_checkpoint_dir(trainer)}", flush=True)
            return
        title = f"validation at step {self.best['step']} (the best of this run)"
        print(format_table(self.best, f"{title}: {self.best['tweets']} tweets"), flush=True)
        if best:
            print(f"best checkpoint: {best}", flush=True)
        stopped = _stopped_by_time(trainer)
        if stopped:
            print(stopped, flush=True)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        record = pl_module.recorded.get("test")
        if not self.enabled or record is None or not trainer.is_global_zero:
            return
        print(format_table(record, _title("test", record, trainer.ckpt_path)), flush=True)
        if trainer.ckpt_path and Path(trainer.ckpt_path).is_file():
            from sentiment_pl.files import atomic_write_text

            path = test_results_path(trainer.ckpt_path)
            # Without the step: `test` does not restore the loop, so its own step is 0, not the checkpoint's.
            figures = {k: v for k, v in record.items() if k != "step"}
            atomic_write_text(path, json.dumps({"checkpoint": Path(trainer.ckpt_path).name, **figures}, indent=1))
            log.info("test metrics written to %s", path)


def _stopped_by_time(trainer: pl.Trainer) -> str | None:
    """The line saying that `trainer.max_time` ended training before its steps did, if it did."""
    timer = time_limit(trainer)
    total = int(trainer.estimated_stepping_batches)
    if timer is None or timer.time_remaining() > 0 or trainer.global_step >= total:
        return None
    limit = timedelta(seconds=round(limit_seconds(timer)))
    return (f"trainer.max_time ({limit}) ended training at step {trainer.global_step} of {total}; "
            "the learning rate was decayed by the clock")


def _title(split: str, record: dict[str, Any], ckpt_path: str | None) -> str:
    source = f" of {ckpt_path}" if ckpt_path else ""
    return f"{split}{source}: {record['tweets']} tweets"


def _checkpoint_dir(trainer: pl.Trainer) -> str:
    dirs = checkpoint_dirs(trainer)
    return dirs[0] if dirs else "(none saved)"
