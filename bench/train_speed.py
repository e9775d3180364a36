"""Training speed: sentiment_pl against the seed's stack (TRL SFTTrainer, completion-only loss), side by side.

Both train the same random-init model (a tiny 256-wide, 4-layer Llama, or with `--arch full` TinyLlama-1.1B's
own architecture) in 4-bit NF4 with LoRA r=8/alpha=16 on k_proj+v_proj, batch 12, on the same real tweets with
the same chat template, system prompt and supervised tokens, with the same gradient-checkpointing setting. Each run
is a fresh process; the variants alternate over the repeats (both suffer the same contention) and the table shows
medians. Prints a table, writes the full results as JSON, and ends with one line of key=value pairs.

    python bench/train_speed.py --quick                 # under 3 minutes on 2 cores
    python bench/train_speed.py                         # tiny Llama, 10 steps x 3 repeats
    python bench/train_speed.py --arch full             # TinyLlama-1.1B architecture, 4-bit
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (ROOT, Setting, machine, median, require_assets, run_child, sample_tweets,  # noqa: E402
                     save_random_weights, setting_dict, write_json, write_jsonl)

VARIANTS = ("ours", "trl", "ours_full_head", "ours_full_last_layer")
# The last layer's ablation runs only when asked for, so that --quick stays under 3 minutes.
TINY_DEFAULT = ("ours", "trl", "ours_full_head")
METRICS = ("samples_per_s", "tokens_per_s", "seconds_per_step", "padding_efficiency", "peak_rss_mb_training",
           "peak_rss_mb_process")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=("tiny", "full"), default="tiny", help="model architecture")
    p.add_argument("--quick", action="store_true", help="few steps and 2 repeats: under 3 minutes on 2 cores")
    p.add_argument("--steps", type=int, help="timed optimizer steps per run (default: tiny 10, full 3; quick 4)")
    p.add_argument("--repeats", type=int, help="runs of each variant, alternated (default 3, full 3, quick 2)")
    p.add_argument("--variants", default=None,
                   help=f"comma-separated subset of {','.join(VARIANTS)} "
                        f"(default: {','.join(TINY_DEFAULT)} for tiny, ours,trl for full)")
    p.add_argument("--gradient-checkpointing", choices=("on", "off"), default=None,
                   help="the same for every variant (default: off for tiny, on for full)")
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--seed", type=int, default=0, help="which tweets are drawn from the train split")
    p.add_argument("--output", type=Path, default=None, help="JSON results (default bench/results/train_<arch>.json)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--job", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def make_setting(args: argparse.Namespace, weights: str) -> Setting:
    full = args.arch == "full"
    steps = args.steps or (4 if args.quick else 3 if full else 10)
    gc = args.gradient_checkpointing == "on" if args.gradient_checkpointing else full
    return Setting(arch=args.arch, weights=weights, batch_size=args.batch_size, steps=steps,
                   gradient_checkpointing=gc)


def summarize(runs: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    return {v: {m: median([r[m] for r in rs]) for m in METRICS} for v, rs in runs.items() if rs}


def ratios(summary: dict[str, dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for a, b in (("ours", "trl"), ("ours_full_head", "trl"), ("ours", "ours_full_head"),
                 ("ours", "ours_full_last_layer")):
        if a in summary and b in summary:
            for m in ("samples_per_s", "tokens_per_s", "peak_rss_mb_training", "peak_rss_mb_process"):
                out[f"{a}/{b}:{m}"] = summary[a][m] / summary[b][m]
    return out


def table(summary: dict[str, dict[str, float]], runs: dict[str, list[dict]]) -> str:
    head = f"{'variant':20s} {'runs':>4s} {'samples/s':>10s} {'tokens/s':>9s} {'s/step':>7s} {'pad.eff':>7s} " \
           f"{'peakRSS train MB':>16s} {'peakRSS proc MB':>15s}"
    lines = [head]
    for v, s in summary.items():
        lines.append(f"{v:20s} {len(runs[v]):4d} {s['samples_per_s']:10.2f} {s['tokens_per_s']:9.0f} "
                     f"{s['seconds_per_step']:7.2f} {s['padding_efficiency']:7.3f} {s['peak_rss_mb_training']:16.0f} "
                     f"{s['peak_rss_mb_process']:15.0f}")
    for v, rs in runs.items():
        lines.append(f"  {v} samples/s per run: " + ", ".join(f"{r['samples_per_s']:.2f}" for r in rs))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.worker:
        from _train_workers import run_worker

        return run_worker(args.worker, args.job)
    require_assets()
    variants = args.variants.split(",") if args.variants else (
        list(TINY_DEFAULT) if args.arch == "tiny" else ["ours", "trl"])
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        sys.exit(f"--variants: unknown {sorted(unknown)}; choose from {list(VARIANTS)}")
    repeats = args.repeats or (2 if args.quick else 3)
    env = machine()
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        print(f"building the random-init {args.arch} model once ...", flush=True)
        setting = make_setting(args, str(save_random_weights(args.arch, Path(tmp) / "weights")))
        n = setting.steps * setting.batch_size
        texts, labels = sample_tweets("train", n + setting.batch_size, args.seed)
        files = {"train": str(write_jsonl(Path(tmp) / "timed.jsonl", texts[:n], labels[:n])),
                 "validation": str(write_jsonl(Path(tmp) / "warmup.jsonl", texts[n:], labels[n:]))}
        runs: dict[str, list[dict]] = {v: [] for v in variants}
        timeout = 3600 if args.arch == "full" else 900
        for r in range(repeats):
            # Alternate the order so neither side always runs first (after the other's page cache, or contention).
            for v in (variants if r % 2 == 0 else variants[::-1]):
                result = run_child("train_speed.py", v, {"setting": setting_dict(setting), "files": files}, timeout)
                runs[v].append(result)
                print(f"  repeat {r + 1}/{repeats} {v:20s} {result['samples_per_s']:.2f} samples/s, "
                      f"{result['tokens_per_s']:.0f} tokens/s, peak RSS {result['peak_rss_mb_training']:.0f} MB",
                      flush=True)
    summary = summarize(runs)
    rat = ratios(summary)
    print(table(summary, runs))
    for k, v in rat.items():
        print(f"  {k} = {v:.2f}")
    output = args.output or ROOT / "bench" / "results" / f"train_{args.arch}{'_quick' if args.quick else ''}.json"
    write_json(output, {"setting": setting_dict(replace(setting, weights="(temporary)")), "repeats": repeats,
                        "machine": env, "runs": runs, "median": summary, "ratios": rat})
    print(f"wrote {output}")
    headline = {"arch": args.arch, "speedup_samples": rat.get("ours/trl:samples_per_s", float("nan")),
                "speedup_tokens": rat.get("ours/trl:tokens_per_s", float("nan")),
                "rss_ratio": rat.get("ours/trl:peak_rss_mb_training", float("nan")),
                "ours_samples_per_s": summary.get("ours", {}).get("samples_per_s", float("nan")),
                "trl_samples_per_s": summary.get("trl", {}).get("samples_per_s", float("nan"))}
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in headline.items()))
    return headline


if __name__ == "__main__":
    main()
