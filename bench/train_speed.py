"""Training speed: sentiment_pl against the seed's stack (TRL SFTTrainer, completion-only loss), side by side.

Both train the same model (by default the real SmolLM2-135M-Instruct; `--model tiny`, a random-init 256-wide,
4-layer Llama, or `--model full`, TinyLlama-1.1B's own architecture with random weights) in 4-bit NF4 with LoRA
r=8/alpha=16 on k_proj+v_proj, batch 12, on the same real tweets with the same chat template, system prompt and
supervised tokens, the same gradient-checkpointing setting and the same compute dtype (`--dtype auto`: bf16 on a
CPU with native bf16, else fp32; TRL then runs with `bf16=True`). Each run is a fresh process; the variants
alternate over the repeats (both suffer the same contention) and the table shows medians. Prints a table, writes
the full results as JSON, and ends with one line of key=value pairs.

    python bench/train_speed.py --quick                 # SmolLM2, under 3 minutes on 2 cores
    python bench/train_speed.py                         # SmolLM2, 10 steps x 3 repeats, ours in fp32 beside
    python bench/train_speed.py --model tiny            # the random-init regression rows
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (MODELS, ROOT, Setting, machine, median, require_assets, resolved_dtype,  # noqa: E402
                     run_child, sample_tweets, save_weights, setting_dict, write_json, write_jsonl)

VARIANTS = ("ours", "trl", "ours_fp32", "ours_full_head", "ours_full_last_layer")
# What runs unless --variants says otherwise; the ablations only when asked for, so that --quick stays short.
DEFAULT_VARIANTS = {"smollm2": ("ours", "trl", "ours_fp32"), "tiny": ("ours", "trl", "ours_full_head"),
                    "full": ("ours", "trl")}
METRICS = ("samples_per_s", "tokens_per_s", "seconds_per_step", "padding_efficiency", "peak_rss_mb_training",
           "peak_rss_mb_process")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=MODELS, default="smollm2", help="the model under test")
    p.add_argument("--quick", action="store_true",
                   help="few steps, 2 repeats, ours and trl only: under 3 minutes on 2 cores")
    p.add_argument("--steps", type=int, help="timed optimizer steps per run (default: 10, full 3; quick 3)")
    p.add_argument("--repeats", type=int, help="runs of each variant, alternated (default 3, quick 2)")
    p.add_argument("--variants", default=None,
                   help=f"comma-separated subset of {','.join(VARIANTS)} (default: "
                        + "; ".join(f"{m}: {','.join(v)}" for m, v in DEFAULT_VARIANTS.items()) + ")")
    p.add_argument("--dtype", choices=("auto", "bfloat16", "float32"), default="auto",
                   help="compute dtype of both stacks (ours_fp32 is always float32)")
    p.add_argument("--gradient-checkpointing", choices=("on", "off"), default=None,
                   help="the same for every variant (default: off for tiny, on for full)")
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--seed", type=int, default=0, help="which tweets are drawn from the train split")
    p.add_argument("--output", type=Path, default=None, help="JSON results (default bench/results/train_<model>.json)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--job", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def make_setting(args: argparse.Namespace, weights: str, tokenizer: str) -> Setting:
    full = args.model == "full"
    steps = args.steps or (3 if args.quick or full else 10)
    gc = args.gradient_checkpointing == "on" if args.gradient_checkpointing else full
    return Setting(arch=args.model, weights=weights, tokenizer=tokenizer, dtype=args.dtype,
                   batch_size=args.batch_size, steps=steps, gradient_checkpointing=gc)


def summarize(runs: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    return {v: {m: median([r[m] for r in rs]) for m in METRICS} for v, rs in runs.items() if rs}


def ratios(summary: dict[str, dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for a, b in (("ours", "trl"), ("ours_full_head", "trl"), ("ours", "ours_full_head"),
                 ("ours", "ours_full_last_layer"), ("ours", "ours_fp32")):
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
    require_assets(args.model)
    variants = args.variants.split(",") if args.variants else (
        ["ours", "trl"] if args.quick else list(DEFAULT_VARIANTS[args.model]))
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        sys.exit(f"--variants: unknown {sorted(unknown)}; choose from {list(VARIANTS)}")
    repeats = args.repeats or (2 if args.quick else 3)
    env = machine()
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        print(f"writing the {args.model} model once as a plain folder ...", flush=True)
        setting = make_setting(args, *save_weights(args.model, Path(tmp) / "weights"))
        n = setting.steps * setting.batch_size
        texts, labels = sample_tweets("train", n + setting.batch_size, args.seed)
        files = {"train": str(write_jsonl(Path(tmp) / "timed.jsonl", texts[:n], labels[:n])),
                 "validation": str(write_jsonl(Path(tmp) / "warmup.jsonl", texts[n:], labels[n:]))}
        runs: dict[str, list[dict]] = {v: [] for v in variants}
        timeout = 3600 if args.model == "full" else 900
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
    nan = float("nan")
    headline = {"model": args.model, "ratio": rat.get("ours/trl:samples_per_s", nan),
                "ours_samples_per_s": summary.get("ours", {}).get("samples_per_s", nan),
                "trl_samples_per_s": summary.get("trl", {}).get("samples_per_s", nan),
                "ours_fp32_samples_per_s": summary.get("ours_fp32", {}).get("samples_per_s", nan),
                "ours_peak_rss_mb": summary.get("ours", {}).get("peak_rss_mb_training", nan),
                "trl_peak_rss_mb": summary.get("trl", {}).get("peak_rss_mb_training", nan),
                "dtype": resolved_dtype(setting), "cpu_capability": env["cpu_capability"],
                "native_bf16": env["native_bf16"]}
    output = args.output or ROOT / "bench" / "results" / f"train_{args.model}{'_quick' if args.quick else ''}.json"
    write_json(output, {**headline, "setting": setting_dict(replace(setting, weights="(temporary)")),
                        "repeats": repeats, "machine": env, "runs": runs, "median": summary, "ratios": rat})
    print(f"wrote {output}")
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in headline.items()))
    return headline


if __name__ == "__main__":
    main()
