"""What ZeRO-Offload costs here: step time, peak memory and checkpoint size with and without DeepSpeed ZeRO-2 +
optimizer offload (DeepSpeedCPUAdam), for a 4-bit random-init Llama with LoRA r=8 on k/v, on real tweets.

Each run is a fresh `python -m sentiment_pl fit` process; the two variants alternate over the repeats, so both
suffer the same contention, and the table shows medians. On a CPU both variants keep everything in host memory, so
the memory column shows the offload's bookkeeping, not a GPU saving. Prints a table and writes JSON.

    python bench/offload.py                               # a tiny random-init Llama (d=256, 4 layers), 10 steps x 2
    python bench/offload.py --arch 1.1b --steps 3 --batch-size 4 --repeats 1   # TinyLlama-1.1B's architecture
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from lightning.pytorch.callbacks import Callback

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SENTIMENT_PL_SHARED", ROOT.parent / "shared"))
ARCHITECTURES = {
    "tiny": {"hidden_size": 256, "intermediate_size": 704, "num_hidden_layers": 4, "num_attention_heads": 4,
             "num_key_value_heads": 2, "initializer_range": 0.1},
    "1.1b": {},  # TinyLlama-1.1B-Chat's own config.json
}
VARIANTS = {
    "plain": {"trainer": {"strategy": "auto"},
              "model": {"optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 1e-3}}}},
    "zero2_offload": {"trainer": {"strategy": {"class_path": "sentiment_pl.training.strategies.ZeroOffload",
                                               "init_args": {"stage": 2, "offload_optimizer": True}}},
                      "model": {"optimizer": {"class_path": "deepspeed.ops.adam.DeepSpeedCPUAdam",
                                              "init_args": {"lr": 1e-3}}}},
}


class StepTimer(Callback):
    """Records wall time per optimizer step after `warmup` steps, and this process's peak RSS, to a JSON file."""

    def __init__(self, path: str, warmup: int = 1) -> None:
        self.path, self.warmup, self.times, self.start = path, warmup, [], 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step > self.warmup:
            self.times.append(time.perf_counter() - self.start)

    def on_fit_end(self, trainer, pl_module) -> None:
        import resource

        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        Path(self.path).write_text(json.dumps({"step_seconds": self.times, "peak_rss_mb": rss_mb}))


def tweet_folder(target: Path, n: int) -> Path:
    source = SHARED / "data" / "tweet_eval" / "sentiment"
    target.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val", "test"):
        for kind in ("text", "labels"):
            lines = (source / f"{split}_{kind}.txt").read_text(encoding="utf-8").splitlines(keepends=True)
            (target / f"{split}_{kind}.txt").write_text("".join(lines[:n]), encoding="utf-8")
    (target / "mapping.txt").write_text((source / "mapping.txt").read_text())
    return target


def config_for(args: argparse.Namespace, variant: str, run_dir: Path, data: Path) -> dict:
    config = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "precision": "32-true", "max_steps": args.steps + 1,
                    "limit_val_batches": 0, "num_sanity_val_steps": 0, "enable_progress_bar": False,
                    "enable_model_summary": False, "default_root_dir": str(run_dir),
                    "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                               "init_args": {"save_dir": str(run_dir / "logs")}},
                    "callbacks": [{"class_path": "offload.StepTimer",
                                   "init_args": {"path": str(run_dir / "timing.json")}}]},
        "model": {"base": {"name": str(SHARED / "models" / "TinyLlama-1.1B-Chat-v1.0"), "random_init": True,
                           "architecture": ARCHITECTURES[args.arch], "quantization": "nf4", "dtype": "float32"},
                  "lora": {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["k_proj", "v_proj"]},
                  "lr_schedule": "constant"},
        "data": {"source": {"class_path": "sentiment_pl.data.sources.TweetEvalFolder",
                            "init_args": {"path": str(data)}},
                 "batch_size": args.batch_size, "max_length": 256, "group_by_length": False},
        "checkpoint": {"monitor": None, "save_top_k": 0},
        "last_checkpoint": {"dirpath": str(run_dir / "checkpoints")},
        "adapter": {"dirpath": str(run_dir / "adapter")},
    }
    for key in ("trainer", "model"):
        config[key].update(VARIANTS[variant][key])
    return config


def size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def run_once(args: argparse.Namespace, variant: str, work: Path, data: Path, repeat: int) -> dict:
    run_dir = work / f"{variant}_{repeat}"
    run_dir.mkdir(parents=True)
    path = run_dir / "config.yaml"
    path.write_text(yaml.safe_dump(config_for(args, variant, run_dir, data)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).parent),
                                                         os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "sentiment_pl", "fit", "--config", str(path)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{variant} run failed:\n{done.stderr[-4000:]}")
    timing = json.loads((run_dir / "timing.json").read_text())
    return {"variant": variant, "repeat": repeat, "wall_s": time.perf_counter() - start,
            "s_per_step": statistics.median(timing["step_seconds"]), "peak_rss_mb": timing["peak_rss_mb"],
            "checkpoint_mb": size_mb(run_dir / "checkpoints" / "last.ckpt"),
            "adapter_mb": size_mb(run_dir / "adapter")}


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=sorted(ARCHITECTURES), default="tiny", help="model architecture")
    p.add_argument("--steps", type=int, default=10, help="timed optimizer steps per run (one more warms up)")
    p.add_argument("--batch-size", type=int, default=12, help="tweets per step")
    p.add_argument("--repeats", type=int, default=2, help="runs of each variant, alternated")
    p.add_argument("--output", default="bench/results/offload.json", help="JSON file with every run")
    args = p.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="offload_bench_") as tmp:
        data = tweet_folder(Path(tmp) / "data", (args.steps + 2) * args.batch_size)
        for repeat in range(args.repeats):
            order = list(VARIANTS) if repeat % 2 == 0 else list(reversed(VARIANTS))
            for variant in order:
                results.append(run_once(args, variant, Path(tmp), data, repeat))
                print(json.dumps(results[-1]), flush=True)
    print(f"\n{args.arch}: batch {args.batch_size}, {args.steps} timed steps, medians of {args.repeats} run(s)")
    print(f"{'variant':15s} {'s/step':>8s} {'peak RSS MB':>12s} {'checkpoint MB':>14s} {'adapter MB':>11s}")
    for variant in VARIANTS:
        rows = [r for r in results if r["variant"] == variant]
        med = {k: statistics.median(r[k] for r in rows) for k in ("s_per_step", "peak_rss_mb", "checkpoint_mb",
                                                                   "adapter_mb")}
        print(f"{variant:15s} {med['s_per_step']:8.3f} {med['peak_rss_mb']:12.0f} {med['checkpoint_mb']:14.2f} "
              f"{med['adapter_mb']:11.2f}")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "runs": results}, indent=1))
    return results


if __name__ == "__main__":
    main()
