"""Shared system-turn prefix vs the unshared computation: training steps and class scoring, alternated.

One process, one model (a 256-wide, 4-layer random-init Llama with TinyLlama's
vocabulary, NF4 4-bit + LoRA r=8 on k_proj/v_proj), the real tokenizer and real TweetEval train tweets in
length-grouped batches, as training sees them. Each round times one training step (forward, loss, backward,
AdamW step) with the prefix shared and one without, in alternating order, then the same for class scoring of an
evaluation batch; the ratios are medians of the per-round ratios, so load from other processes hits both sides.

    python bench/shared_prefix.py [--quick] [--threads N] [--output runs/bench/shared_prefix.json]

Prints a table, writes the full results as JSON, and ends with one `key=value` line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from sentiment_pl.data.batching import Collator, LengthGroupedSampler
from sentiment_pl.data.encoding import ChatEncoder
from sentiment_pl.data.prompts import CLASS_NAMES, PromptSpec
from sentiment_pl.data.sources import TweetEvalFolder
from sentiment_pl.files import atomic_write_text
from sentiment_pl.model.base import BaseModelSpec, LoraSettings
from sentiment_pl.model.objective import completion_loss
from sentiment_pl.training.module import SentimentClassifier

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SENTIMENT_PL_SHARED", ROOT.parent / "shared"))
ARCHITECTURE = {"hidden_size": 256, "intermediate_size": 704, "num_hidden_layers": 4, "num_attention_heads": 4,
                "num_key_value_heads": 2, "initializer_range": 0.1}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few rounds: under 3 minutes on 2 CPU cores")
    parser.add_argument("--rounds", type=int, help="timed rounds per measurement (default 20, quick 4)")
    parser.add_argument("--batch-size", type=int, default=12, help="training batch (the seed's 12)")
    parser.add_argument("--eval-batch-size", type=int, default=64, help="class-scoring batch")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice). On a machine "
                        "shared with other jobs, 1 avoids threads waiting on each other, which swamps the ratios")
    parser.add_argument("--shared", type=Path, default=SHARED, help="folder with models/ and data/")
    parser.add_argument("--output", type=Path, default=ROOT / "runs" / "bench" / "shared_prefix.json")
    return parser.parse_args()


def build(args: argparse.Namespace):
    """The module (model loaded, adapters on), the encoder, and batches of real tweets."""
    from transformers import AutoTokenizer

    tokenizer_dir = args.shared / "models" / "TinyLlama-1.1B-Chat-v1.0"
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    encoder = ChatEncoder(tokenizer, PromptSpec(), max_length=256)
    spec = BaseModelSpec(name=str(tokenizer_dir), random_init=True, architecture=ARCHITECTURE, quantization="nf4",
                         dtype="float32")
    module = SentimentClassifier(spec, LoraSettings())
    module.configure_model()
    module.answers = encoder.answers
    tweets = TweetEvalFolder(str(args.shared / "data" / "tweet_eval" / "sentiment")).load("train", CLASS_NAMES)
    count = (args.rounds + 2) * args.batch_size * 4
    examples = [encoder.encode(t, s) for t, s in zip(tweets.texts[:count], tweets.sentiments[:count])]
    collate = Collator(tokenizer.pad_token_id or 0)
    lengths = [len(e.input_ids) for e in examples]

    def batches(order: list[int], size: int) -> list[dict[str, torch.Tensor]]:
        starts = range(0, len(order) - size + 1, size)
        return [collate([(i, examples[i]) for i in order[j:j + size]]) for j in starts]

    # The orders training and evaluation use: length-grouped shuffled groups; longest first.
    train_order = list(LengthGroupedSampler(lengths, args.batch_size, num_replicas=1, rank=0))
    eval_order = sorted(range(len(examples)), key=lambda i: -lengths[i])
    return module, encoder, batches(train_order, args.batch_size), batches(eval_order, args.eval_batch_size)


def train_step(module, optimizer, batch) -> float:
    start = time.perf_counter()
    loss = completion_loss(module.hidden_states(batch["input_ids"], batch["attention_mask"]), batch["labels"],
                           module.head)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return time.perf_counter() - start


@torch.no_grad()
def score_step(module, batch) -> float:
    start = time.perf_counter()
    module.class_log_probs(batch)
    return time.perf_counter() - start


def alternate(module, prefix: tuple[int, ...], batches, step, rounds: int) -> dict[str, list[float]]:
    """Per-round seconds of `step` on the same batch, shared and unshared; the order flips every round."""
    times: dict[str, list[float]] = {"shared": [], "unshared": []}
    for r in range(rounds + 1):  # round 0 warms both paths up and is dropped
        batch = batches[r % len(batches)]
        for variant in (("shared", "unshared") if r % 2 else ("unshared", "shared")):
            module.prefix_ids = prefix if variant == "shared" else None
            seconds = step(batch)
            if r:
                times[variant].append(seconds)
    return times


def equality_check(module, prefix, batch) -> float:
    """|loss shared - loss unshared| on one batch: the benchmark measures two equal computations."""
    with torch.no_grad():
        losses = []
        for p in (prefix, None):
            module.prefix_ids = p
            hidden = module.hidden_states(batch["input_ids"], batch["attention_mask"])
            losses.append(completion_loss(hidden, batch["labels"], module.head).item())
    return abs(losses[0] - losses[1])


def summarize(times: dict[str, list[float]], samples: int) -> dict[str, float]:
    ratios = [u / s for u, s in zip(times["unshared"], times["shared"])]
    return {"shared_s": statistics.median(times["shared"]), "unshared_s": statistics.median(times["unshared"]),
            "shared_samples_per_s": samples / statistics.median(times["shared"]),
            "unshared_samples_per_s": samples / statistics.median(times["unshared"]),
            "speedup_median_of_ratios": statistics.median(ratios), "rounds": len(ratios)}


def main() -> None:
    args = parse_args()
    args.rounds = args.rounds or (4 if args.quick else 20)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    module, encoder, train_batches, eval_batches = build(args)
    prefix = encoder.prefix_ids
    module.model.train()
    optimizer = torch.optim.AdamW([p for p in module.model.parameters() if p.requires_grad], lr=1e-3)
    loss_diff = equality_check(module, prefix, train_batches[0])
    train = alternate(module, prefix, train_batches, lambda b: train_step(module, optimizer, b), args.rounds)
    module.model.eval()
    score = alternate(module, prefix, eval_batches, lambda b: score_step(module, b), args.rounds)
    tokens = [(int(b["attention_mask"].sum()), b["input_ids"].numel(), len(b["input_ids"])) for b in train_batches]
    real, padded, rows = map(sum, zip(*tokens))
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
                   f"torch {torch.__version__}",
        "model": {"architecture": ARCHITECTURE, "quantization": "nf4", "lora": "r=8 k_proj,v_proj"},
        "batch_size": args.batch_size, "eval_batch_size": args.eval_batch_size, "prefix_tokens": len(prefix),
        "train_real_tokens_per_sample": real / rows,
        # Token positions the decoder runs per training batch: every padded position, or the prefix once.
        "train_positions_ratio": padded / (padded - (rows - len(train_batches)) * len(prefix)),
        "loss_abs_diff_shared_vs_unshared": loss_diff,
        "train": summarize(train, args.batch_size) | {"times": train},
        "score": summarize(score, args.eval_batch_size) | {"times": score},
    }
    atomic_write_text(args.output, json.dumps(results, indent=2) + "\n")
    print(f"{'':10s} {'shared s':>9s} {'unshared s':>11s} {'shared/s':>9s} {'unshared/s':>11s} {'speedup':>8s}")
    for name in ("train", "score"):
        r = results[name]
        print(f"{name:10s} {r['shared_s']:9.3f} {r['unshared_s']:11.3f} {r['shared_samples_per_s']:9.1f} "
              f"{r['unshared_samples_per_s']:11.1f} {r['speedup_median_of_ratios']:7.2f}x")
    print(f"prefix {len(prefix)} tokens; {real / rows:.1f} real tokens per training sample; decoder positions "
          f"unshared/shared {results['train_positions_ratio']:.2f}; |loss diff| {loss_diff:.2e}; "
          f"{args.rounds} rounds; JSON: {args.output}")
    print(f"train_speedup={results['train']['speedup_median_of_ratios']:.3f} "
          f"score_speedup={results['score']['speedup_median_of_ratios']:.3f} "
          f"train_samples_per_s_shared={results['train']['shared_samples_per_s']:.2f} "
          f"train_samples_per_s_unshared={results['train']['unshared_samples_per_s']:.2f} "
          f"loss_abs_diff={loss_diff:.2e}")


if __name__ == "__main__":
    main()
