"""What each piece of the CPU bf16 path is worth: alternated ablations of one training step, in one process.

Every variant is our SentimentClassifier on SmolLM2-135M-Instruct (NF4 + LoRA r=8/alpha=16 on k_proj+v_proj,
batch 12 of real train tweets) and runs forward + backward on the same batches; the variants alternate round by
round (the order reversed every other round) and the table shows the median seconds per step and the ratio to
`fp32`. One process holds every model, so no variant gains from a warmer machine than another.

- `fp32`: `model.base.dtype: float32`, what `auto` picks on a CPU without native bf16.
- `auto`: the shipped bf16 path (on a CPU with native bf16): frozen weights in bf16, fp32 LoRA masters under
  autocast, attention in fp32.
- `auto_bf16_attention`: `auto` with attention left to autocast, i.e. PyTorch's bf16 CPU flash attention.
- `auto_fp32_frozen`: `auto` with the frozen norms and embeddings upcast to fp32, as peft's k-bit preparation does
  (every activation then fp32, a cast before each matrix product).
- `auto_no_dropout`: `auto` with LoRA dropout 0 (a recipe change, judged on validation, not here).
- `auto_no_quantization`: `auto` with `quantization: none` (bf16 weights, 270 MB, no NF4 dequantization).

    python bench/cpu_precision.py --quick      # under 3 minutes on 2 cores
    python bench/cpu_precision.py              # 5 rounds of 3 batches
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from _common import ROOT, machine, require_assets, sample_tweets, save_weights, write_json, write_jsonl  # noqa: E402

VARIANTS = ("fp32", "auto", "auto_bf16_attention", "auto_fp32_frozen", "auto_no_dropout", "auto_no_quantization")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2 rounds of 2 batches")
    p.add_argument("--rounds", type=int, default=None, help="alternated rounds (default 5; quick 2)")
    p.add_argument("--batches", type=int, default=None, help="batches per variant per round (default 3; quick 2)")
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {','.join(VARIANTS)}")
    p.add_argument("--output", type=Path, default=None,
                   help="JSON results (default bench/results/cpu_precision.json, _quick with --quick)")
    return p.parse_args(argv)


def build(variant: str, weights: str, task):
    from sentiment_pl.model.base import BaseModelSpec, LoraSettings
    from sentiment_pl.training.module import SentimentClassifier

    spec = BaseModelSpec(name=weights, quantization="none" if variant == "auto_no_quantization" else "nf4",
                         dtype="float32" if variant == "fp32" else "auto")
    module = SentimentClassifier(spec, LoraSettings(dropout=0.0 if variant == "auto_no_dropout" else 0.05))
    torch.manual_seed(0)
    module.configure_model()
    module.task = task
    if variant == "auto_fp32_frozen":
        for p in module.model.parameters():
            if not p.requires_grad and p.dtype == torch.bfloat16:
                p.data = p.data.float()
    return module


@contextlib.contextmanager
def attention_for(variant: str):
    """The shared-prefix attention of `variant`: registered around its steps, as every model shares the name."""
    from transformers import AttentionInterface

    from sentiment_pl.model.fast.prefix import ATTENTION, _shared_prefix_attention
    from sentiment_pl.model.precision import fp32_attention_on_cpu

    sdpa = AttentionInterface()["sdpa"]
    kernel = sdpa if variant == "auto_bf16_attention" else fp32_attention_on_cpu(sdpa)
    AttentionInterface.register(f"{ATTENTION}_sdpa", _shared_prefix_attention(kernel))
    try:
        yield
    finally:
        AttentionInterface.register(f"{ATTENTION}_sdpa", _shared_prefix_attention(fp32_attention_on_cpu(sdpa)))


def step(module, batch) -> tuple[float, float]:
    start = time.perf_counter()
    loss = module.training_step(batch, 0)
    loss.backward()
    module.zero_grad(set_to_none=True)
    return time.perf_counter() - start, loss.item()


def main(argv: list[str] | None = None) -> dict:
    import itertools

    from sentiment_pl.data.datamodule import TweetSentimentData
    from sentiment_pl.data.sources import LocalFiles

    args = parse_args(argv)
    require_assets("smollm2")
    variants = args.variants.split(",")
    rounds, n_batches = args.rounds or (2 if args.quick else 5), args.batches or (2 if args.quick else 3)
    env = machine()
    with tempfile.TemporaryDirectory(prefix="bench_precision_") as tmp:
        weights, tokenizer = save_weights("smollm2", Path(tmp) / "weights")
        texts, labels = sample_tweets("train", n_batches * args.batch_size, 0)
        path = str(write_jsonl(Path(tmp) / "train.jsonl", texts, labels))
        data = TweetSentimentData(source=LocalFiles(train=path, validation=path), tokenizer=tokenizer,
                                  batch_size=args.batch_size)
        data.setup("fit")
        batches = list(itertools.islice(iter(data.train_dataloader()), n_batches))
        modules = {v: build(v, weights, data.task) for v in variants}
    seconds: dict[str, list[float]] = {v: [] for v in variants}
    losses: dict[str, float] = {}
    for r in range(rounds + 1):  # round 0 warms every variant up and is not counted
        for v in variants if r % 2 == 0 else variants[::-1]:
            with attention_for(v):
                timed = [step(modules[v], b) for b in batches]
            if r > 0:
                seconds[v].append(sum(t for t, _ in timed) / len(timed))
            losses[v] = timed[0][1]
    samples = sum(len(b["input_ids"]) for b in batches) / len(batches)
    median = {v: statistics.median(s) for v, s in seconds.items()}
    reference = median.get("fp32", next(iter(median.values())))
    print(f"{'variant':24s} {'s/step':>7s} {'samples/s':>10s} {'vs fp32':>8s} {'loss':>8s}")
    for v in variants:
        print(f"{v:24s} {median[v]:7.3f} {samples / median[v]:10.2f} {reference / median[v]:7.2f}x "
              f"{losses[v]:8.4f}")
    result = {"cpu_capability": env["cpu_capability"], "native_bf16": env["native_bf16"],
              "batch_size": args.batch_size, "batches": n_batches, "rounds": rounds, "seconds_per_step": seconds,
              "median_seconds_per_step": median,
              "samples_per_s": {v: samples / m for v, m in median.items()},
              "ratio_to_fp32": {v: reference / m for v, m in median.items()}, "first_batch_loss": losses,
              "machine": env}
    output = args.output or ROOT / "bench" / "results" / f"cpu_precision{'_quick' if args.quick else ''}.json"
    write_json(output, result)
    print(f"wrote {output}")
    headline = {"cpu_capability": env["cpu_capability"], "native_bf16": env["native_bf16"],
                **{f"{v}_vs_fp32": round(r, 3) for v, r in result["ratio_to_fp32"].items()}}
    print(" ".join(f"{k}={v}" for k, v in headline.items()))
    return result


if __name__ == "__main__":
    main()
