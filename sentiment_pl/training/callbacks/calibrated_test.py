"""The `calibration` callback: in `test`, fit the label-shift bias on validation and report raw and calibrated
metrics side by side."""

from __future__ import annotations

import json
import logging

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from sentiment_pl.errors import InputError
from sentiment_pl.training.callbacks.calibration import fit_class_bias, macro_f1_of_predictions
from sentiment_pl.training.metrics import make_metrics, scalar_metrics

log = logging.getLogger(__name__)


class CalibratedTest(Callback):
    """Opt-in label-shift calibration for `test` (`--calibration.enabled true`): a per-class bias on the class
    log-scores, fitted on the validation split only to maximise its macro-F1, is applied to the test scores; the
    test report then shows raw and calibrated metrics side by side and logs `test/calibrated/*`.

    Args:
        enabled: Fit and report the calibration.
        output: JSON file for the fitted bias (for `classify --calibration`); default `calibration.json` in the
            run's log directory, none without a logger.
    """

    def __init__(self, enabled: bool = False, output: str | None = None) -> None:
        self.enabled, self.output = enabled, output
        self.bias: torch.Tensor | None = None

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.enabled:
            return
        scores, targets = validation_scores(trainer, pl_module)
        self.bias = fit_class_bias(scores, targets)
        k = len(pl_module.task.class_names)
        self.val_f1 = [float(macro_f1_of_predictions((scores + b).argmax(-1)[None], targets, k)[0])
                       for b in (torch.zeros(k), self.bias)]
        self.metrics = {name: make_metrics(k).to(pl_module.device) for name in ("raw", "calibrated")}
        path = self.output or (f"{trainer.log_dir}/calibration.json" if trainer.log_dir else None)
        if path and trainer.is_global_zero:
            from sentiment_pl.files import atomic_write_text

            record = {"class_names": list(pl_module.task.class_names), "bias": self.bias.tolist(),
                      "validation_macro_f1": {"raw": self.val_f1[0], "calibrated": self.val_f1[1]}}
            atomic_write_text(path, json.dumps(record, indent=2) + "\n")
            log.info("calibration written to %s", path)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not self.enabled:
            return
        scores, targets = outputs["scores"], outputs["sentiment"]
        self.metrics["raw"].update(scores.argmax(-1), targets)
        self.metrics["calibrated"].update((scores + self.bias.to(scores.device)).argmax(-1), targets)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.enabled:
            return
        values = {name: m.compute() for name, m in self.metrics.items()}  # synced across ranks
        scalars = scalar_metrics(values["calibrated"], pl_module.task.class_names)
        pl_module.log_dict({f"test/calibrated/{k}": v for k, v in scalars.items()}, rank_zero_only=True)
        if trainer.is_global_zero:
            print(self.report(values, pl_module.task.class_names), flush=True)

    def report(self, values: dict[str, dict[str, torch.Tensor]], class_names: tuple[str, ...]) -> str:
        bias = ", ".join(f"{n} {b:+.3f}" for n, b in zip(class_names, self.bias.tolist()))
        lines = [f"calibration (fitted on validation): bias {bias}; validation macro-F1 "
                 f"{self.val_f1[0]:.4f} -> {self.val_f1[1]:.4f}",
                 f"{'test':24s} {'raw':>9s} {'calibrated':>11s}"]
        raw, cal = values["raw"], values["calibrated"]
        for key, label in (("macro_f1", "macro-F1"), ("macro_recall", "macro-recall"), ("accuracy", "accuracy")):
            lines.append(f"{label:24s} {float(raw[key]):9.4f} {float(cal[key]):11.4f}")
        for c, name in enumerate(class_names):
            lines.append(f"{'F1 ' + name:24s} {float(raw['class_f1'][c]):9.4f} {float(cal['class_f1'][c]):11.4f}")
        truth = raw["confusion"].sum(1).double()
        for c, name in enumerate(class_names):
            shares = [float(v["confusion"][:, c].sum() / truth.sum()) for v in (raw, cal)]
            lines.append(f"{'predicted ' + name:24s} {shares[0]:9.1%} {shares[1]:11.1%}   "
                         f"(true {float(truth[c] / truth.sum()):.1%})")
        return "\n".join(lines)


def validation_scores(trainer: pl.Trainer, pl_module: pl.LightningModule) -> tuple[torch.Tensor, torch.Tensor]:
    """Class log-scores and true classes of the whole validation split (all ranks), in the test's precision."""
    import torch.distributed as dist
    from tqdm.auto import tqdm

    data = trainer.datamodule
    data.setup("validate")
    parts = []
    with torch.no_grad(), trainer.precision_plugin.forward_context():
        for batch in tqdm(data.val_dataloader(), desc="calibration: scoring validation",
                          disable=not trainer.is_global_zero):
            batch = trainer.strategy.batch_to_device(batch)
            parts.append((pl_module.class_log_probs(batch).float().cpu(), batch["sentiment"].cpu()))
    if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
        gathered: list = [None] * trainer.world_size
        dist.all_gather_object(gathered, parts)
        parts = [p for rank_parts in gathered for p in rank_parts]
    scores, targets = torch.cat([s for s, _ in parts]), torch.cat([t for _, t in parts])
    if (targets < 0).any():
        raise InputError("calibration needs a labeled validation split")
    return scores, targets
