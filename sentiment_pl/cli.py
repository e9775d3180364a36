"""`python -m sentiment_pl {fit,validate,test,predict} --config configs/qlora.yaml`: the LightningCLI entry point."""

from __future__ import annotations

import os
from typing import Any

import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from sentiment_pl.data.datamodule import TweetSentimentData
from sentiment_pl.errors import InputError
from sentiment_pl.quiet import configure_logging
from sentiment_pl.training.callbacks.budget import StepBudget, Throughput
from sentiment_pl.training.callbacks.calibrated_test import CalibratedTest
from sentiment_pl.training.callbacks.example_predictions import ExamplePredictions
from sentiment_pl.training.callbacks.predictions import PredictionWriter
from sentiment_pl.training.checkpointing import AdapterExport, ExactResume, SaveOnInterrupt
from sentiment_pl.training.compatibility import check_combination
from sentiment_pl.training.module import SentimentClassifier
from sentiment_pl.training.progress import Progress
from sentiment_pl.training.report import ResultTable

TRAINER_DEFAULTS = {
    "logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
               "init_args": {"save_dir": "runs", "name": "sentiment", "default_hp_metric": False}},
    "plugins": [{"class_path": "sentiment_pl.training.checkpointing.AtomicCheckpointIO"}],
}


class SentimentCLI(LightningCLI):
    """LightningCLI with the callbacks every run wants, configurable by name (`--checkpoint.monitor ...`)."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # One source of truth: the tokenizer is the model's own.
        parser.link_arguments("model.base.name", "data.tokenizer")
        # The best weights by validation macro-F1 (`--ckpt_path best`), and separately the latest state to resume
        # from: Lightning 2.6 refreshes `save_last` only when a top-k checkpoint was written at the same step.
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.monitor": "val/macro_f1", "checkpoint.mode": "max",
                             "checkpoint.save_top_k": 1, "checkpoint.filename": "best-step{step}-f1{val/macro_f1:.4f}",
                             "checkpoint.auto_insert_metric_name": False})
        parser.add_lightning_class_args(ModelCheckpoint, "last_checkpoint")
        parser.set_defaults({"last_checkpoint.filename": "last", "last_checkpoint.save_top_k": 1,
                             "last_checkpoint.enable_version_counter": False})
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.add_lightning_class_args(Throughput, "throughput")
        parser.add_lightning_class_args(StepBudget, "step_budget")
        parser.add_lightning_class_args(PredictionWriter, "predictions")
        parser.add_lightning_class_args(CalibratedTest, "calibration")
        parser.add_lightning_class_args(ExamplePredictions, "examples")
        parser.add_lightning_class_args(ExactResume, "exact_resume")
        parser.add_lightning_class_args(SaveOnInterrupt, "save_on_interrupt")
        parser.add_lightning_class_args(AdapterExport, "adapter")
        parser.add_lightning_class_args(ResultTable, "results")
        parser.add_lightning_class_args(Progress, "progress_bar")

    def before_instantiate_classes(self) -> None:
        # Refuse known-bad combinations (DeepSpeed with 4-bit, ...) before anything is built or loaded.
        check_combination(self.config.get(self.subcommand) if self.subcommand else self.config)

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]):
        # The forced callbacks adapt to the trainer they join: no learning-rate monitor without a logger (Lightning
        # refuses one), no progress bar where the config turned it off (Lightning refuses that too).
        if config.get("logger") is False:
            callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
        if config.get("enable_progress_bar") is False:
            callbacks = [c for c in callbacks if not isinstance(c, Progress)]
        try:
            return super()._instantiate_trainer(config, callbacks)
        except MisconfigurationException as err:
            # Lightning's refusal of a trainer setting the types let through (a `max_time` such as "40min"):
            # the user's input, so one line, not a traceback.
            raise InputError(f"trainer: {err}") from err


def main(args: list[str] | None = None, run: bool = True) -> SentimentCLI:
    """Run a subcommand; with `run=False`, parse a config (no subcommand) and only instantiate its classes."""
    if not torch.cuda.is_available():
        # DeepSpeed would detect its CPU accelerator itself, but announces that on stdout, into --print_config.
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    configure_logging()
    return SentimentCLI(SentimentClassifier, TweetSentimentData, args=args, run=run, seed_everything_default=0,
                        trainer_defaults=TRAINER_DEFAULTS,
                        # Re-runs in the same directory must not fail on the saved config (lightning#7679);
                        # each run's config lands in its own versioned log directory anyway.
                        save_config_kwargs={"overwrite": True})


if __name__ == "__main__":
    main()
