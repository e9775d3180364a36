"""The learning-rate schedule: a real fit steps through exactly the linear warm-up and decay the fraction puts
there; under a time limit the clock pushes the schedule ahead so that it ends when the time does, on every rank
alike; a warm-up fraction that leaves no run is refused by name."""

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT
from sentiment_pl.cli import main
from sentiment_pl.training.module import SentimentClassifier
from sentiment_pl.training.schedule import ClockedSchedule, build_schedule
from training_runs import deep_update, tiny_config, tweeteval_folder, write_config


def reference_linear(step: int, total: int, warmup: int) -> float:
    """Linear warm-up from 0 over `warmup` steps, then a linear decay to 0 at `total`."""
    if step < warmup:
        return step / warmup
    return (total - step) / (total - warmup)


def test_warmup_that_leaves_no_run_is_refused():
    with pytest.raises(ValueError, match=re.escape("warmup_ratio=1.0 must be in [0, 1)")):
        SentimentClassifier(lr_schedule="linear", warmup_ratio=1.0)


@pytest.mark.slow
def test_fit_steps_through_the_configured_rates(tmp_path: Path, tokenizer_dir, tweeteval_dir):
    data = tweeteval_folder(tmp_path / "data", tweeteval_dir, {"train": 40, "val": 8, "test": 8})
    log = tmp_path / "rates.jsonl"
    config = tiny_config(tmp_path, tokenizer_dir, data, {
        "trainer": {"max_steps": 10, "callbacks": [{"class_path": "training_runs.RateRecorder",
                                                    "init_args": {"path": str(log)}}]},
        "model": {"lr_schedule": "linear", "warmup_ratio": 0.2}})
    main(["fit", "--config", str(write_config(tmp_path / "config.yaml", config))])
    got = [json.loads(line) for line in log.read_text().splitlines()]
    lr = config["model"]["optimizer"]["init_args"]["lr"]
    assert got == pytest.approx([lr * reference_linear(s, 10, warmup=2) for s in range(10)], abs=1e-12)


def clocked(clock_values: list[float], total: int = 40, warmup_ratio: float = 0.25) -> tuple[ClockedSchedule, list]:
    """A linear schedule over `total` steps whose clock reads `clock_values` in turn; the rates it sets."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    readings = iter(clock_values)
    schedule = build_schedule(optimizer, "linear", total, warmup_ratio, clock=lambda: next(readings))
    rates = [optimizer.param_groups[0]["lr"]]
    for _ in clock_values[1:]:
        optimizer.step()
        schedule.step()
        rates.append(optimizer.param_groups[0]["lr"])
    return schedule, rates


def test_clock_behind_the_steps_leaves_the_step_schedule_exact():
    _, rates = clocked([0.5 * s / 40 for s in range(41)])
    assert rates == pytest.approx([0.5 * reference_linear(s, 40, warmup=10) for s in range(41)], abs=1e-15)


def test_clock_ahead_of_the_steps_sets_the_rates_and_ends_the_schedule():
    # The budget runs out at step 16: from there on the schedule reads 2.5 steps of it a step.
    _, rates = clocked([2.5 * s / 40 for s in range(17)])
    assert rates == pytest.approx([0.5 * reference_linear(2.5 * s, 40, warmup=10) for s in range(17)], abs=1e-15)
    assert rates[-1] == 0.0


def test_clocked_schedule_saves_without_its_clock_and_resumes_on_a_new_one():
    schedule, _ = clocked([0.0, 0.3, 0.4])
    buffer = io.BytesIO()
    torch.save(schedule.state_dict(), buffer)  # a closure in the state would not pickle
    buffer.seek(0)
    resumed, _ = clocked([0.0])
    resumed.load_state_dict(torch.load(buffer, weights_only=True))  # as every checkpoint here is read
    resumed.clock = lambda: 0.5
    resumed.optimizer.step()
    resumed.step()
    assert resumed.last_epoch == 3
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * reference_linear(20, 40, warmup=10))


def test_a_schedule_that_cannot_follow_the_clock_is_refused_by_name():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    with pytest.raises(ValueError, match=re.escape("model.lr_schedule='reduce_lr_on_plateau' cannot follow "
                                                   "trainer.max_time")):
        build_schedule(optimizer, "reduce_lr_on_plateau", 40, 0.0, clock=lambda: 0.0)


def clock_config(tmp_path: Path, tokenizer_dir, tweeteval_dir, rank_skew: float = 0.0) -> tuple[dict, Path]:
    """40 steps, a (simulated) 20-second limit and 1 second a step: the clock ends the run at step 20."""
    data = tweeteval_folder(tmp_path / "data", tweeteval_dir, {"train": 40, "val": 8, "test": 8})
    log = tmp_path / "rates.jsonl"
    callbacks = [{"class_path": "training_runs.RateRecorder", "init_args": {"path": str(log)}},
                 {"class_path": "training_runs.StepClock",
                  "init_args": {"duration": {"seconds": 20}, "rank_skew": rank_skew}}]
    config = tiny_config(tmp_path, tokenizer_dir, data, {
        "trainer": {"max_steps": 40, "limit_val_batches": 1.0, "val_check_interval": 1000,
                    "check_val_every_n_epoch": None, "callbacks": callbacks},
        "model": {"lr_schedule": "linear", "warmup_ratio": 0.25}})
    return config, log


@pytest.mark.slow
def test_fit_stopped_by_the_clock_decays_by_it_and_validates_at_the_stop(tmp_path: Path, tokenizer_dir,
                                                                       tweeteval_dir, capsys):
    config, log = clock_config(tmp_path, tokenizer_dir, tweeteval_dir)
    cli = main(["fit", "--config", str(write_config(tmp_path / "config.yaml", config))])
    assert ("trainer.max_time (0:00:20) ended training at step 20 of 40; the learning rate was decayed by the "
            "clock") in capsys.readouterr().out
    got = [json.loads(line) for line in log.read_text().splitlines()]
    lr = config["model"]["optimizer"]["init_args"]["lr"]
    assert cli.trainer.global_step == 20
    assert got == pytest.approx([lr * reference_linear(2 * s, 40, warmup=10) for s in range(20)], abs=1e-12)
    assert cli.model.recorded["val"]["step"] == 20  # the weights the clock stopped at were validated


@pytest.mark.slow
def test_two_ranks_with_unequal_clocks_train_at_rank_zeros_rates(tmp_path: Path, tokenizer_dir, tweeteval_dir):
    # Rank 1's clock runs 30 % fast: unless rank zero's reading is shared, the replicas' rates part.
    config, log = clock_config(tmp_path, tokenizer_dir, tweeteval_dir, rank_skew=0.3)
    config = deep_update(config, {"trainer": {"devices": 2, "strategy": "ddp"}})
    path = write_config(tmp_path / "config.yaml", config)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "sentiment_pl", "fit", "--config", str(path)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-5000:]
    ranks = [[json.loads(line) for line in Path(f"{log}.rank{r}").read_text().splitlines()] for r in (0, 1)]
    lr = config["model"]["optimizer"]["init_args"]["lr"]
    expected = [lr * reference_linear(2 * s, 40, warmup=10) for s in range(20)]
    assert ranks[0] == pytest.approx(expected, abs=1e-12) and ranks[1] == ranks[0]
