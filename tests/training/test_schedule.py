"""The learning-rate schedule: a real fit steps through exactly the linear warm-up and decay the fraction puts
there, and a warm-up fraction that leaves no run is refused by name."""

import json
import re
from pathlib import Path

import pytest

from sentiment_pl.cli import main
from sentiment_pl.training.module import SentimentClassifier
from training_runs import tiny_config, tweeteval_folder, write_config


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
