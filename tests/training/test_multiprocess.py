"""Two ranks on CPU (gloo), under DDP and under DeepSpeed ZeRO-Offload: validation and test metrics over the whole
split equal those of one process on the same weights (no tweet dropped or counted twice by the distributed
sampler), `predict` writes every tweet once and in input order, and logs and checkpoints are written once.

The split sizes are odd, so two ranks get unequal shares. Each run is a real multi-process launch: the worker
script is started by the test, and Lightning starts it again for rank 1."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from training_runs import CPU_ADAM, ZERO_OFFLOAD, deep_update, recording, tiny_config
from training_runs import tweeteval_folder, write_config

pytestmark = pytest.mark.slow
WORKER = ROOT / "tests" / "multiprocess_worker.py"  # beside training_runs, which it imports
SIZES = {"train": 24, "val": 23, "test": 21}


def launch(config: Path, ckpt: Path, out: Path, fit: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, str(WORKER), str(config), str(ckpt), str(out)] + (["fit"] if fit else [])
    done = subprocess.run(cmd, cwd=out, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    # The metrics are synced by torchmetrics before logging: Lightning's advice to sync them again is not shown.
    assert "It is recommended to use `self.log(" not in done.stderr, done.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


def configs(tmp: Path, tokenizer_dir, data_dir, strategy: dict) -> tuple[Path, Path, Path]:
    """(two-rank config, one-rank config, checkpoint path)"""
    base = tiny_config(tmp / "two", tokenizer_dir, data_dir, deep_update(strategy, {
        "trainer": {"max_steps": 3, "limit_val_batches": 1.0,
                    "callbacks": [recording(tmp / "two" / "losses.jsonl")]},
        "data": {"eval_batch_size": 4}}))
    two = deep_update(base, {"trainer": {"devices": 2}, "predictions": {"output": str(tmp / "two" / "pred.csv")}})
    one = deep_update(base, {"trainer": {"devices": 1, "default_root_dir": str(tmp / "one"), "logger": {
        "class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(tmp / "one" / "logs")}}},
                             "predictions": {"output": str(tmp / "one" / "pred.csv")}})
    ckpt = tmp / "two" / "logs" / "run" / "v" / "checkpoints" / "last.ckpt"
    return (write_config(tmp / "two" / "config.yaml", two), write_config(tmp / "one" / "config.yaml", one), ckpt)


def read_rows(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def check_two_ranks_equal_one(tmp: Path, tokenizer_dir, data_dir, strategy: dict) -> Path:
    two_config, one_config, ckpt = configs(tmp, tokenizer_dir, data_dir, strategy)
    two = launch(two_config, ckpt, tmp / "two", fit=True)
    one = launch(one_config, ckpt, tmp / "one", fit=False)
    assert two["world_size"] == 2 and one["world_size"] == 1
    for stage in ("validate", "test"):
        prefix = "val" if stage == "validate" else "test"
        for name in ("macro_f1", "macro_recall", "accuracy", "f1_negative", "f1_neutral", "f1_positive"):
            key = f"{prefix}/{name}"
            assert two[stage][key] == pytest.approx(one[stage][key], abs=1e-6), (key, two[stage], one[stage])
    # Every test tweet predicted once, in input order, with the same probabilities as one process.
    texts = (data_dir / "test_text.txt").read_text(encoding="utf-8").splitlines()
    rows_two, rows_one = read_rows(tmp / "two" / "pred.csv"), read_rows(tmp / "one" / "pred.csv")
    assert [int(r["index"]) for r in rows_two] == list(range(SIZES["test"]))
    assert [r["text"] for r in rows_two] == texts
    for a, b in zip(rows_two, rows_one):
        assert float(a["p_positive"]) == pytest.approx(float(b["p_positive"]), abs=1e-4)
        assert a["sentiment"] == b["sentiment"]
    # Written once, by rank zero: one log directory, each training step logged once.
    assert [p.name for p in (tmp / "two" / "logs" / "run").iterdir()] == ["v"]
    with open(tmp / "two" / "logs" / "run" / "v" / "metrics.csv") as f:
        steps = [r["step"] for r in csv.DictReader(f) if r.get("train/loss")]
    assert sorted(steps) == sorted(set(steps)) and len(steps) == 3
    return ckpt


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, tweeteval_dir):
    return tweeteval_folder(tmp_path_factory.mktemp("data"), tweeteval_dir, SIZES)


def test_ddp_two_ranks_equal_one_process(tmp_path, tokenizer_dir, data_dir):
    ckpt = check_two_ranks_equal_one(tmp_path, tokenizer_dir, data_dir, {"trainer": {"strategy": "ddp"}})
    # Beside the checkpoint, only the test metrics `test` leaves for export: written once, for the whole split.
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["last.ckpt", "last.test.json"]
    assert json.loads((ckpt.parent / "last.test.json").read_text())["tweets"] == SIZES["test"]


def test_deepspeed_two_ranks_equal_one_process(tmp_path, tokenizer_dir, data_dir, cpu_adam):
    strategy = {"trainer": {"strategy": ZERO_OFFLOAD},
                "model": {"optimizer": {"class_path": CPU_ADAM, "init_args": {"lr": 0.01}}}}
    ckpt = check_two_ranks_equal_one(tmp_path, tokenizer_dir, data_dir, strategy)
    # One model-state file (rank zero) and one optimizer partition per rank (ZeRO-2 shards the optimizer).
    files = sorted(p.name for p in (ckpt / "checkpoint").iterdir())
    assert files == ["mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_optim_states.pt",
                     "zero_pp_rank_1_mp_rank_00_optim_states.pt"], files
