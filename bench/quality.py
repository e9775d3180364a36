"""Quality on the TweetEval test split: fit a config, score its best checkpoint on test, keep the figures.

Every figure comes from the project's own commands, run as a user runs them: `fit` (timed: `fit_seconds` is the
whole command, loading and validations included), then `test` of the best checkpoint (the one with the best
validation macro-F1), then the record goes to `bench/results/quality_smollm2.json` (see `_quality.py`).

    python bench/quality.py fit configs/quality.yaml --seed 0           # one configuration, one seed
    python bench/quality.py fit configs/quality.yaml --validation-only  # a screening run: no test score
    python bench/quality.py test configs/quality.yaml --seed 0          # test a fitted run, keep the record
    python bench/quality.py fit configs/seed_recipe.yaml --name "seed recipe" -- --trainer.max_steps 14 ...
    python bench/quality.py zero-shot configs/quality.yaml              # the base alone: scoring and generation
    python bench/quality.py table                                       # the README's table, medians over seeds

A screening run is judged on validation alone, so `--validation-only` stops after `fit` (its time is kept beside
the run, in `fit_record.json`); `test` with the same config, seed, name and overrides finishes an adopted one.
Arguments after `--` go to both `fit` and `test` (overrides of the config). `zero-shot` scores the base
model of a config without an adapter on validation and test, by class scoring and by greedy generation parsed
into a class (the seed's method), through `python -m sentiment_pl baselines`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, machine, require_assets, write_json  # noqa: E402
from _quality import RESULTS, medians, read_records, save_record  # noqa: E402

RUNS = "runs"  # the log directory of every fit, as a user's run
FIT_RECORD = "fit_record.json"  # beside the run: how long its fit took, and the command


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit a config with one seed, test its best checkpoint, keep the record")
    fit.add_argument("config", help="the training config")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--name", default=None, help="the configuration's name in the results (default: the file)")
    fit.add_argument("--validation-only", action="store_true",
                     help="stop after fit: a screening run, judged on validation, not scored on test")
    test = sub.add_parser("test", help="test the best checkpoint of a run fitted with --validation-only, "
                                       "keep the record")
    test.add_argument("config", help="the training config the run was fitted with")
    test.add_argument("--seed", type=int, default=0)
    test.add_argument("--name", default=None, help="the name the run was fitted under (default: the file)")
    zero = sub.add_parser("zero-shot", help="the config's base model without an adapter, validation and test")
    zero.add_argument("config", help="the training config whose base model and prompt are scored")
    zero.add_argument("--generation", choices=("on", "off"), default="on",
                      help="also greedy generation + parsing (about 30 minutes for the test split on 2 cores)")
    sub.add_parser("table", help="print the quality table (medians over seeds) from the results file")
    # Overrides come after `--` and go to sentiment_pl untouched (argparse's REMAINDER would also take `--seed`).
    argv = sys.argv[1:] if argv is None else argv
    cut = argv.index("--") if "--" in argv else len(argv)
    args = p.parse_args(argv[:cut])
    args.overrides = argv[cut + 1:]
    return args


def sentiment_pl(*args: str) -> tuple[str, float]:
    """Run `python -m sentiment_pl ARGS`, echo its output, and return it with the wall seconds it took."""
    command = [sys.executable, "-m", "sentiment_pl", *args]
    print("$ " + " ".join(command), flush=True)
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    print(proc.stdout[-3000:], flush=True)
    if proc.returncode != 0:
        sys.exit(f"command failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout, seconds


def run_version(name: str, seed: int) -> tuple[str, Path]:
    """The log version of a configuration's seed and its run directory."""
    version = f"{name.replace(' ', '_').replace('/', '_')}-seed{seed}"
    return version, ROOT / RUNS / "quality" / version


def fit_run(config: str, seed: int, name: str, overrides: list[str]) -> None:
    """`fit` one seed, timed; the time and the command go to the run's `fit_record.json` for `test_run`."""
    version, run_dir = run_version(name, seed)
    fit_args = ["fit", "--config", config, "--seed_everything", str(seed),
                "--trainer.logger.init_args.save_dir", RUNS, "--trainer.logger.init_args.name", "quality",
                "--trainer.logger.init_args.version", version, *overrides]
    _, fit_seconds = sentiment_pl(*fit_args)
    write_json(run_dir / FIT_RECORD, {"fit_seconds": round(fit_seconds, 1),
                                      "command": "python -m sentiment_pl " + " ".join(fit_args)})
    checkpoint, v = best_validation(run_dir)
    print(f"fit took {fit_seconds:.1f} s; {checkpoint.name}: validation macro-F1 {v['macro_f1']:.4f}, "
          f"macro-recall {v['macro_recall']:.4f}, accuracy {v['accuracy']:.4f}")


def best_validation(run_dir: Path) -> tuple[Path, dict]:
    """The run's best checkpoint (best validation macro-F1) and the validation figures it was kept for."""
    import torch

    from sentiment_pl.training.module import VALIDATION_KEY

    best = sorted((run_dir / "checkpoints").glob("best-*.ckpt"))
    if len(best) != 1:
        sys.exit(f"expected one best checkpoint in {run_dir / 'checkpoints'}, found {[p.name for p in best]}")
    return best[0], torch.load(best[0], map_location="cpu", weights_only=True)[VALIDATION_KEY]


def test_run(config: str, seed: int, name: str, overrides: list[str]) -> dict:
    """Score a fitted run's best checkpoint on test once; the record for the results file."""
    import json

    from sentiment_pl.training.report import test_results_path

    _, run_dir = run_version(name, seed)
    if not (run_dir / FIT_RECORD).exists():
        sys.exit(f"{run_dir / FIT_RECORD} not found: fit this config, seed and name first")
    fitted = json.loads((run_dir / FIT_RECORD).read_text())
    checkpoint, validation = best_validation(run_dir)
    _, test_seconds = sentiment_pl("test", "--config", config, "--ckpt_path", str(checkpoint),
                                   "--trainer.logger", "false", *overrides)
    test = json.loads(test_results_path(checkpoint).read_text())
    return {"config": name, "seed": seed, "fit_seconds": fitted["fit_seconds"],
            "val_macro_f1": validation["macro_f1"], "val_macro_recall": validation["macro_recall"],
            "val_accuracy": validation["accuracy"], "val_step": validation["step"],
            "test_macro_f1": test["macro_f1"], "test_macro_recall": test["macro_recall"],
            "test_accuracy": test["accuracy"], "test_class_f1": test["class_f1"], "test_confusion": test["confusion"],
            "test_seconds": round(test_seconds, 1), "checkpoint": str(checkpoint.relative_to(ROOT)),
            "command": fitted["command"], "machine": machine()}


def zero_shot(config: str, generation: bool) -> list[dict]:
    """Records for the base model alone: class scoring, and (optionally) greedy generation parsed into a class."""
    from sentiment_pl.commands.baselines import baselines

    results, seconds = {}, {}
    for split in ("validation", "test"):
        start = time.perf_counter()
        results[split] = baselines(config, split=split, generation=generation, batch_size=64)
        seconds[split] = round(time.perf_counter() - start, 1)
    env = machine()
    names = {"class scoring (zero-shot)": "zero-shot class scoring, same base",
             "greedy generation + parsing": "zero-shot greedy generation + parsing (the seed's method), same base"}
    records = []
    for method, name in names.items():
        if method not in results["test"]:
            continue
        val, test = results["validation"][method], results["test"][method]
        records.append({"config": name, "seed": 0, "fit_seconds": 0.0, "val_macro_f1": val["macro_f1"],
                        "val_macro_recall": val["macro_recall"], "test_macro_f1": test["macro_f1"],
                        "test_macro_recall": test["macro_recall"], "test_accuracy": test["accuracy"],
                        **({"test_not_exactly_a_class": test["not_exactly_a_class"]}
                           if "not_exactly_a_class" in test else {}),
                        "score_seconds": seconds,
                        "command": f"python -m sentiment_pl baselines --train_config {config} --split SPLIT "
                                   f"--batch_size 64 --generation {str(generation).lower()}",
                        "machine": env})
    return records


def table() -> str:
    """Markdown rows, medians over seeds (fit time: the fastest seed's), from the results file."""
    lines = ["| system | seeds | fit (fastest seed) | val macro-F1 | test macro-F1 | test macro-recall | test accuracy |",
             "|---|---|---|---|---|---|---|"]
    for config, m in medians(read_records()).items():
        minutes = f"{m['fit_seconds'] / 60:.0f} min" if m.get("fit_seconds") else "-"
        lines.append(f"| {config} | {m['seeds']} | {minutes} | {m['val_macro_f1']:.3f} | {m['test_macro_f1']:.3f} "
                     f"| {m['test_macro_recall']:.3f} | {m['test_accuracy']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.command == "table":
        print(table())
        return
    require_assets("smollm2")
    if args.command in ("fit", "test"):
        name = args.name or Path(args.config).name
        if args.command == "fit":
            fit_run(args.config, args.seed, name, args.overrides)
        if args.command == "test" or not args.validation_only:
            save_record(test_run(args.config, args.seed, name, args.overrides))
    else:
        for record in zero_shot(args.config, args.generation == "on"):
            save_record(record)
    print(f"results in {RESULTS}")


if __name__ == "__main__":
    main()
