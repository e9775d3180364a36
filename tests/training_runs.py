"""Small real training runs for the strategy, resume, schedule and multi-process tests: a TweetEval-layout folder
of real tweets, a LightningCLI config for a 4-bit tiny Llama with LoRA on it, and the callbacks that record a run
(named in configs as `training_runs.X`, which resolves from every test folder and in the worker script)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch.callbacks import Callback, Timer

from conftest import tiny_base_config

CPU_ADAM = "deepspeed.ops.adam.DeepSpeedCPUAdam"
ZERO_OFFLOAD = {"class_path": "sentiment_pl.training.strategies.ZeroOffload",
                "init_args": {"stage": 2, "offload_optimizer": True}}


def tweeteval_folder(target: Path, source: Path, sizes: dict[str, int]) -> Path:
    """The first `sizes[split]` tweets of each split of the real TweetEval folder `source`, in its layout."""
    target.mkdir(parents=True, exist_ok=True)
    for split, n in sizes.items():
        for kind in ("text", "labels"):
            lines = (source / f"{split}_{kind}.txt").read_text(encoding="utf-8").splitlines(keepends=True)[:n]
            (target / f"{split}_{kind}.txt").write_text("".join(lines), encoding="utf-8")
    (target / "mapping.txt").write_text((source / "mapping.txt").read_text())
    return target


def deep_update(base: dict, overrides: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and "class_path" not in value:
            out[key] = deep_update(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def tiny_config(tmp: Path, tokenizer_dir: Path, data_dir: Path, overrides: dict[str, Any] | None = None) -> dict:
    """fit config: tiny 4-bit Llama + LoRA (dropout on, so the random state matters), AdamW with a linear
    schedule (so a lost scheduler state shows), logs and checkpoints under `tmp`."""
    config = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": 8, "log_every_n_steps": 1,
                    "limit_val_batches": 0, "num_sanity_val_steps": 0, "enable_progress_bar": False,
                    "enable_model_summary": False, "default_root_dir": str(tmp),
                    "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                               "init_args": {"save_dir": str(tmp / "logs"), "name": "run", "version": "v"}}},
        "model": {"base": tiny_base_config(tokenizer_dir),
                  "lora": {"dropout": 0.1},
                  "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.01}},
                  "lr_schedule": "linear", "warmup_ratio": 0.25},
        "data": {"source": {"class_path": "sentiment_pl.data.sources.TweetEvalFolder",
                            "init_args": {"path": str(data_dir)}},
                 "batch_size": 4, "max_length": 128},
        "checkpoint": {"monitor": None, "save_top_k": 0},
        "last_checkpoint": {"every_n_train_steps": 1},
    }
    return deep_update(config, overrides or {})


def write_config(path: Path, config: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


class LossRecorder(Callback):
    """Appends every training batch's loss to a JSON-lines file (also from a subprocess), on rank zero."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.is_global_zero:
            row = {"epoch": trainer.current_epoch, "batch": batch_idx, "step": trainer.global_step,
                   "loss": float(outputs["loss"]), "indices": batch["index"].tolist()}
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")


class RateRecorder(Callback):
    """Appends the learning rate of every optimizer step to a JSON-lines file (`path`.rankN under several
    processes, one file each)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        path = self.path if trainer.world_size == 1 else f"{self.path}.rank{trainer.global_rank}"
        with open(path, "a") as f:
            f.write(json.dumps(trainer.optimizers[0].param_groups[0]["lr"]) + "\n")


def recorded(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def recording(path: Path) -> dict:
    """`trainer.callbacks` entry for a LossRecorder writing to `path`."""
    return {"class_path": "training_runs.LossRecorder", "init_args": {"path": str(path)}}


class SignalAt(Callback):
    """Sends `signum` to this process after optimizer step `step`, as a scheduler or Ctrl-C would."""

    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step and (batch_idx + 1) % trainer.accumulate_grad_batches == 0:
            import os

            os.kill(os.getpid(), self.signum)


def signal_at(step: int, signum: int) -> dict:
    return {"class_path": "training_runs.SignalAt", "init_args": {"step": step, "signum": int(signum)}}


class StepClock(Timer):
    """Lightning's `Timer` on a simulated clock: `seconds_per_step` a finished optimizer step (rank N's
    seconds are `seconds_per_step` x (1 + N x `rank_skew`)), so time-limited runs are exact and repeatable."""

    def __init__(self, duration: dict[str, int], seconds_per_step: float = 1.0, rank_skew: float = 0.0) -> None:
        super().__init__(duration=duration, verbose=False)
        self.seconds_per_step, self.rank_skew, self.trainer = seconds_per_step, rank_skew, None

    def setup(self, trainer, pl_module, stage) -> None:
        self.trainer = trainer

    def time_elapsed(self, stage="train") -> float:
        if self.trainer is None:
            return 0.0
        return self.trainer.global_step * self.seconds_per_step * (1 + self.trainer.global_rank * self.rank_skew)
