"""Where a training step of sentiment_pl spends its time: torch.profiler over a few steps of the real trainer.

The same model and data as bench/train_speed.py (SmolLM2-135M-Instruct by default, 4-bit NF4 + LoRA r=8 on
k_proj+v_proj, batch 12, real tweets, compute dtype `--dtype`).
After `--warmup` steps, `--steps` steps run under the profiler; the operators are then summed into a few
categories (4-bit dequantization, matrix products, attention, optimizer, elementwise, ...) and the top operators by
self time are listed. Writes the table as text and the categories as JSON.

    python bench/profile_step.py                      # SmolLM2, the dtype `auto` picks on this CPU
    python bench/profile_step.py --dtype float32      # SmolLM2 in fp32: the "before" of the bf16 path
    python bench/profile_step.py --model full --steps 1 --warmup 1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from _common import (MODELS, ROOT, Setting, base_spec, machine, require_assets, resolved_dtype,  # noqa: E402
                     sample_tweets, save_weights, write_json, write_jsonl)

# First match wins; matched against the lower-cased operator name.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("bitsandbytes 4-bit ops (dequantize, and what runs inside them)", ("dequant", "bitsandbytes", "bnb")),
    # Not "Optimizer.step": Lightning runs forward and backward inside it, as the step's closure.
    ("optimizer (AdamW)", ("_foreach", "_fused_adam", "aten::lerp", "aten::addcdiv", "aten::addcmul")),
    ("attention (sdpa)", ("scaled_dot_product", "attention", "_efficient_attention", "_flash")),
    ("LoRA dropout (bernoulli masks)", ("bernoulli", "dropout")),
    ("matrix products", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear")),
    ("softmax / cross-entropy / log-softmax", ("softmax", "nll_loss", "cross_entropy")),
    ("copies, casts, indexing, cat", ("aten::copy_", "aten::to", "aten::_to_copy", "aten::index", "aten::cat",
                                      "aten::clone", "aten::contiguous", "aten::fill_", "aten::zero", "aten::empty",
                                      "aten::gather", "aten::scatter", "aten::embedding", "aten::nonzero")),
    ("elementwise (mul, add, silu, rsqrt, pow, mean, ...)", ("aten::mul", "aten::add", "aten::silu", "aten::rsqrt",
                                                             "aten::pow", "aten::mean", "aten::sub", "aten::div",
                                                             "aten::neg", "aten::sum", "aten::where", "aten::cos",
                                                             "aten::sin", "aten::sigmoid", "aten::exp",
                                                             "aten::sqrt")),
)


def categorize(name: str) -> str:
    low = name.lower()
    for category, keys in CATEGORIES:
        if any(k in low for k in keys):
            return category
    return "other"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=MODELS, default="smollm2", help="the model under test")
    p.add_argument("--dtype", choices=("auto", "bfloat16", "float32"), default="auto", help="compute dtype")
    p.add_argument("--steps", type=int, default=3, help="profiled steps")
    p.add_argument("--warmup", type=int, default=2, help="unprofiled steps first")
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--gradient-checkpointing", choices=("on", "off"), default=None,
                   help="default: on for full only, as in bench/train_speed.py")
    p.add_argument("--top", type=int, default=20, help="operators listed")
    p.add_argument("--output", type=Path, default=None, help="default bench/results/profile_<model>_<dtype>.{txt,json}")
    return p.parse_args(argv)


def profiled_fit(setting: Setting, files: dict[str, str], warmup: int, steps: int):
    """Fit for warmup + steps batches; the profiler covers the last `steps`. Returns the profiler."""
    import lightning.pytorch as pl

    from sentiment_pl.data.datamodule import TweetSentimentData
    from sentiment_pl.data.sources import LocalFiles
    from sentiment_pl.model.base import LoraSettings
    from sentiment_pl.training.module import SentimentClassifier

    prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])

    class Window(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == warmup:
                prof.start()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx == warmup + steps - 1:
                prof.stop()

    module = SentimentClassifier(base=base_spec(setting), lora=LoraSettings(),
                                 optimizer=partial(torch.optim.AdamW, lr=setting.lr))
    data = TweetSentimentData(source=LocalFiles(**files), tokenizer=setting.tokenizer, batch_size=setting.batch_size)
    trainer = pl.Trainer(accelerator="cpu", devices=1, precision="32-true", max_steps=warmup + steps,
                         limit_val_batches=0, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[Window()])
    trainer.fit(module, datamodule=data)
    return prof


# An operator in one of these takes its whole subtree (dequantize calls aten ops, sdpa calls bmm and softmax).
WHOLE_SUBTREE = {c for c, _ in CATEGORIES if c.startswith(("bitsandbytes", "attention", "LoRA dropout", "softmax"))}


def by_category(events) -> dict[str, float]:
    """Seconds per category over the profiled window, each microsecond counted once."""
    seconds: dict[str, float] = {}

    def visit(event) -> None:
        category = categorize(event.name)
        if category in WHOLE_SUBTREE:
            seconds[category] = seconds.get(category, 0.0) + event.cpu_time_total / 1e6
            return
        seconds[category] = seconds.get(category, 0.0) + event.self_cpu_time_total / 1e6
        for child in event.cpu_children:
            visit(child)

    for event in events:
        if event.cpu_parent is None:
            visit(event)
    return seconds


def summarize(prof, steps: int, top: int) -> tuple[dict[str, float], str]:
    events = prof.key_averages()
    per_category = by_category(prof.events())
    total = sum(per_category.values())
    per_step = {k: v / steps for k, v in sorted(per_category.items(), key=lambda kv: -kv[1])}
    lines = [f"self CPU time per step: {total / steps:.2f} s", f"{'category':55s} {'s/step':>7s} {'share':>6s}"]
    lines += [f"{k:55s} {v:7.3f} {v / (total / steps):6.1%}" for k, v in per_step.items()]
    lines += ["", events.table(sort_by="self_cpu_time_total", row_limit=top, max_name_column_width=60)]
    return per_step, "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    require_assets(args.model)
    gc = args.gradient_checkpointing == "on" if args.gradient_checkpointing else args.model == "full"
    n = (args.warmup + args.steps) * args.batch_size
    texts, labels = sample_tweets("train", n, 0)
    with tempfile.TemporaryDirectory(prefix="bench_profile_") as tmp:
        weights, tokenizer = save_weights(args.model, Path(tmp) / "weights")
        setting = Setting(arch=args.model, weights=weights, tokenizer=tokenizer, dtype=args.dtype,
                          batch_size=args.batch_size, gradient_checkpointing=gc)
        path = str(write_jsonl(Path(tmp) / "train.jsonl", texts, labels))
        prof = profiled_fit(setting, {"train": path, "validation": path}, args.warmup, args.steps)
    per_step, text = summarize(prof, args.steps, args.top)
    print(text)
    dtype = resolved_dtype(setting)
    output = args.output or ROOT / "bench" / "results" / f"profile_{args.model}_{dtype}"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".txt").write_text(text + "\n")
    write_json(output.with_suffix(".json"), {"model": args.model, "dtype": dtype, "steps": args.steps,
                                             "gradient_checkpointing": gc,
                                             "seconds_per_step_by_category": per_step, "machine": machine()})
    print(f"wrote {output.with_suffix('.txt')} and .json")


if __name__ == "__main__":
    main()
