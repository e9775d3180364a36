"""The `predictions` callback: what `predict` (and `classify`) write, one row per tweet in input order."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback


class PredictionWriter(Callback):
    """Writes `predict` results: one row per tweet in input order (index, text, predicted class, one probability
    per class, and the true class when known) as CSV or JSONL, plus a TweetEval-format file (one class id per line)
    for the official scorer. Rows from all ranks are gathered and written once, by rank zero.

    Args:
        output: File to write (`.csv` or `.jsonl`); defaults to `predictions.csv` in the run's log directory.
            The TweetEval file goes beside it as `<name>.tweeteval.txt`.
        blank_positions: Input rows that were blank and not classified (`classify --blank_rows mark`): each gets
            an output row in its place with an empty class and no probabilities, so rows still line up.
    """

    def __init__(self, output: str | None = None, blank_positions: list[int] | None = None) -> None:
        self.output, self.blank_positions = output, list(blank_positions or [])
        self.rows: list[dict[str, Any]] = []

    def on_predict_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.rows = []

    def on_predict_batch_end(self, trainer, pl_module, outputs: dict, batch, batch_idx, dataloader_idx=0) -> None:
        for index, probs in zip(outputs["index"].tolist(), outputs["probs"].tolist()):
            self.rows.append({"index": index, "probs": probs})

    def on_predict_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        import torch.distributed as dist

        from sentiment_pl.files import atomic_write_text, write_rows

        rows = self.rows
        if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
            gathered: list[list[dict]] = [None] * trainer.world_size  # type: ignore[list-item]
            dist.all_gather_object(gathered, rows)
            rows = [r for part in gathered for r in part]
        if not trainer.is_global_zero:
            return
        dm = trainer.datamodule
        raw, names = dm.raw[dm.predict_split], dm.prompt.class_names
        rows.sort(key=lambda r: r["index"])
        if [r["index"] for r in rows] != list(range(len(raw))):
            raise RuntimeError(f"predictions cover {len(rows)} rows for {len(raw)} inputs: a sample was dropped or "
                               "repeated")
        out_rows = []
        for r in rows:
            best = max(range(len(names)), key=lambda c: r["probs"][c])
            row = {"index": r["index"], "text": raw.texts[r["index"]], "sentiment": names[best]}
            row.update({f"p_{name}": round(p, 6) for name, p in zip(names, r["probs"])})
            if raw.sentiments is not None:
                row["true_sentiment"] = names[raw.sentiments[r["index"]]]
            out_rows.append(row)
        out_rows = with_blank_rows(out_rows, self.blank_positions, names)
        path = self.output or f"{trainer.log_dir or '.'}/predictions.csv"
        written = write_rows(path, out_rows)
        ids = "".join(f"{names.index(r['sentiment'])}\n" if r["sentiment"] else "\n" for r in out_rows)
        official = atomic_write_text(written.with_name(written.stem + ".tweeteval.txt"), ids)
        blank = f" ({len(self.blank_positions)} blank rows marked)" if self.blank_positions else ""
        print(f"wrote {len(out_rows)} predictions{blank} to {written} and {official}", flush=True)


def with_blank_rows(rows: list[dict[str, Any]], blank: list[int], names: tuple[str, ...]) -> list[dict[str, Any]]:
    """The classified rows with a marked row at each blank input position; indices become input positions."""
    if not blank:
        return rows
    out, classified = [], iter(rows)
    blank_set = set(blank)
    for position in range(len(rows) + len(blank)):
        if position in blank_set:
            out.append({"index": position, "text": "", "sentiment": "", **{f"p_{n}": None for n in names}})
        else:
            out.append({**next(classified), "index": position})
    return out
