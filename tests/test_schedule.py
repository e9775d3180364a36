"""The learning-rate schedule: warmup-stable-decay's phases land where the fractions put them, a real fit steps
through exactly those rates, and fractions that do not fit the schedule are refused by name."""

import json
import math
import re
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from sentiment_pl.cli import main
from sentiment_pl.module import SentimentClassifier
from sentiment_pl.schedule import build_schedule
from training_runs import tiny_config, tweeteval_folder, write_config


def reference_wsd(step: int, total: int, warmup: int, decay: int) -> float:
    """Linear warm-up from 0, the peak held, a half-cosine to 0 over the last `decay` steps."""
    if step < warmup:
        return step / warmup
    if step < total - decay:
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * (step - (total - decay)) / decay))


def rates(scheduler: torch.optim.lr_scheduler.LRScheduler, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        out.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return out


def test_warmup_stable_decay_phases():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    got = rates(build_schedule(optimizer, "warmup_stable_decay", 40, warmup_ratio=0.1, decay_ratio=0.25), 40)
    assert got == pytest.approx([2.0 * reference_wsd(s, 40, warmup=4, decay=10) for s in range(40)], abs=1e-9)
    assert got[29] == 2.0 and got[31] < 2.0  # held through step 29, decaying from step 30


@pytest.mark.parametrize("schedule, warmup, decay, message", [
    ("cosine", 0.0, 0.2, "decay_ratio=0.2 applies to lr_schedule=warmup_stable_decay only, not 'cosine'"),
    ("warmup_stable_decay", 0.0, 0.0, "lr_schedule=warmup_stable_decay needs decay_ratio in (0, 1"),
    ("warmup_stable_decay", 0.5, 0.6, "needs decay_ratio in (0, 1 - warmup_ratio = 0.5], got 0.6"),
    ("linear", 1.0, 0.0, "warmup_ratio=1.0 must be in [0, 1)"),
])
def test_fractions_that_do_not_fit_are_refused(schedule, warmup, decay, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        SentimentClassifier(lr_schedule=schedule, warmup_ratio=warmup, decay_ratio=decay)


class RateRecorder(Callback):
    """Appends the learning rate of every optimizer step to a JSON-lines file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(trainer.optimizers[0].param_groups[0]["lr"]) + "\n")


@pytest.mark.slow
def test_fit_steps_through_the_configured_rates(tmp_path: Path, tokenizer_dir, tweeteval_dir):
    data = tweeteval_folder(tmp_path / "data", tweeteval_dir, {"train": 40, "val": 8, "test": 8})
    log = tmp_path / "rates.jsonl"
    config = tiny_config(tmp_path, tokenizer_dir, data, {
        "trainer": {"max_steps": 10, "callbacks": [{"class_path": "test_schedule.RateRecorder",
                                                    "init_args": {"path": str(log)}}]},
        "model": {"lr_schedule": "warmup_stable_decay", "warmup_ratio": 0.2, "decay_ratio": 0.4}})
    main(["fit", "--config", str(write_config(tmp_path / "config.yaml", config))])
    got = [json.loads(line) for line in log.read_text().splitlines()]
    lr = config["model"]["optimizer"]["init_args"]["lr"]
    assert got == pytest.approx([lr * reference_wsd(s, 10, warmup=2, decay=4) for s in range(10)], abs=1e-12)
