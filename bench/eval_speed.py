"""Evaluation speed: sentiment_pl's batched class scoring against greedy generation + parsing (the seed's method).

Both run on the same model object (by default the real SmolLM2-135M-Instruct in 4-bit with a fresh LoRA, i.e.
zero-shot; `--model tiny|full`: random-init, as in bench/train_speed.py), in the compute dtype `--dtype` stands for
on this CPU, on the same real test tweets, in batches of the same size, with tokenization done beforehand for both:

- scoring: `trainer.predict` with our module; one forward pass over each prompt, the output layer at one position,
  the class with the highest first-answer-token log-probability wins;
- generation: `model.generate` (greedy, KV cache on, left-padded batches) of up to `--new-tokens` tokens after the
  same prompt, decoded, and parsed for the first class name; a generation without one counts as wrong.

The two alternate over the repeats; the table shows medians, each method's macro-F1 on the same tweets and the
share of unparseable generations (zero-shot figures; on a random-init model both sit near chance).

    python bench/eval_speed.py --quick
    python bench/eval_speed.py                            # generation batched like scoring (64)
    python bench/eval_speed.py --generation-batch-size 1  # generation one tweet at a time
    python bench/eval_speed.py --model tiny               # the random-init regression row
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from _common import (MODELS, ROOT, Setting, base_spec, machine, median, require_assets,  # noqa: E402
                     resolved_dtype, sample_tweets, save_weights, setting_dict, write_json, write_jsonl)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=MODELS, default="smollm2", help="the model under test")
    p.add_argument("--dtype", choices=("auto", "bfloat16", "float32"), default="auto", help="compute dtype")
    p.add_argument("--quick", action="store_true", help="128 tweets, 2 repeats: under 3 minutes on 2 cores")
    p.add_argument("--tweets", type=int, default=None, help="test tweets drawn at random (default 512; quick 128)")
    p.add_argument("--repeats", type=int, default=None, help="runs of each method, alternated (default 3; quick 2)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--generation-batch-size", type=int, default=None,
                   help="generation batch (default: --batch-size; 1 is a per-tweet generate loop)")
    p.add_argument("--new-tokens", type=int, default=4, help="generation budget (the longest answer is 3 tokens)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", type=Path, default=None, help="JSON results (default bench/results/eval_<model>.json)")
    return p.parse_args(argv)


def build(setting: Setting, test_file: str, batch_size: int):
    """Our module and datamodule, set up for predict on the tweets (the encoding happens here, untimed)."""
    import lightning.pytorch as pl

    from sentiment_pl.data.datamodule import TweetSentimentData
    from sentiment_pl.data.sources import LocalFiles
    from sentiment_pl.model.base import LoraSettings
    from sentiment_pl.training.module import SentimentClassifier

    module = SentimentClassifier(base=base_spec(setting), lora=LoraSettings())
    data = TweetSentimentData(source=LocalFiles(test=test_file), tokenizer=setting.tokenizer, batch_size=batch_size,
                              predict_split="test")
    trainer = pl.Trainer(accelerator="cpu", devices=1, precision="32-true", logger=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[PredictClock()])
    return module, data, trainer


def _clock_callback():
    import lightning.pytorch as pl

    class Clock(pl.Callback):
        """Wall time of the predict loop alone (set-up and encoding excluded)."""

        seconds = 0.0

        def on_predict_epoch_start(self, trainer, pl_module):
            self.start = time.perf_counter()

        def on_predict_epoch_end(self, trainer, pl_module):
            self.seconds = time.perf_counter() - self.start

    return Clock


PredictClock = _clock_callback()


def score(module, data, trainer) -> tuple[float, list[int]]:
    """Seconds and predicted classes, in input order, from our batched class scoring."""
    outputs = trainer.predict(module, datamodule=data)
    clock = next(c for c in trainer.callbacks if isinstance(c, PredictClock))
    preds: dict[int, int] = {}
    for out in outputs:
        preds.update(zip(out["index"].tolist(), out["probs"].argmax(-1).tolist()))
    return clock.seconds, [preds[i] for i in range(len(preds))]


def generate(module, data, batch_size: int, new_tokens: int) -> tuple[float, list[int], list[str]]:
    """Seconds, parsed classes (-1: no class name found) and raw answers from greedy generation."""
    tokenizer, names = data.tokenizer, data.prompt.class_names
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b", re.IGNORECASE)
    prompts = [e.input_ids[: e.prompt_length] for e in data.datasets["test"].examples]
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))  # as our eval order: less padding
    preds, texts = [-1] * len(prompts), [""] * len(prompts)
    module.model.eval()
    start = time.perf_counter()
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            rows = order[b: b + batch_size]
            width = max(len(prompts[i]) for i in rows)
            ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, i in enumerate(rows):  # left padding, so every row's answer starts at the same column
                ids[r, width - len(prompts[i]):] = torch.tensor(prompts[i])
                mask[r, width - len(prompts[i]):] = 1
            out = module.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens,
                                        do_sample=False, use_cache=True, pad_token_id=tokenizer.pad_token_id)
            for r, i in enumerate(rows):
                texts[i] = tokenizer.decode(out[r, width:], skip_special_tokens=True)
                found = pattern.search(texts[i])
                preds[i] = names.index(found.group(1).lower()) if found else -1
    return time.perf_counter() - start, preds, texts


def macro_f1(truth: list[int], preds: list[int], classes: int) -> float:
    from sklearn.metrics import f1_score

    # An unparseable answer (-1) is no class: it costs recall and never counts as a hit.
    return float(f1_score(truth, preds, labels=list(range(classes)), average="macro", zero_division=0))


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    require_assets(args.model)
    n = args.tweets or (128 if args.quick else 512)
    repeats = args.repeats or (2 if args.quick else 3)
    gen_batch = args.generation_batch_size or args.batch_size
    texts, truth = sample_tweets("test", n, args.seed)
    env = machine()
    with tempfile.TemporaryDirectory(prefix="bench_eval_") as tmp:
        weights, tokenizer = save_weights(args.model, Path(tmp) / "weights")
        setting = Setting(arch=args.model, weights=weights, tokenizer=tokenizer, dtype=args.dtype)
        module, data, trainer = build(setting, str(write_jsonl(Path(tmp) / "test.jsonl", texts, truth)),
                                      args.batch_size)
        runs: dict[str, list[float]] = {"scoring": [], "generation": []}
        for r in range(repeats + 1):  # the first round warms both up and is not counted
            for method in (("scoring", "generation") if r % 2 == 0 else ("generation", "scoring")):
                if method == "scoring":
                    seconds, score_preds = score(module, data, trainer)
                else:
                    seconds, gen_preds, answers = generate(module, data, gen_batch, args.new_tokens)
                if r > 0:
                    runs[method].append(n / seconds)
                print(f"  {'warm-up' if r == 0 else f'repeat {r}/{repeats}'} {method:10s} {n / seconds:8.1f} "
                      f"tweets/s", flush=True)
    classes = len(data.prompt.class_names)
    result = {
        "tweets": n, "repeats": repeats, "batch_size": args.batch_size, "generation_batch_size": gen_batch,
        "new_tokens": args.new_tokens,
        "setting": {**setting_dict(setting), "weights": "(temporary)"}, "machine": env,
        "tweets_per_s": runs,
        "median_tweets_per_s": {k: median(v) for k, v in runs.items()},
        "macro_f1": {"scoring": macro_f1(truth, score_preds, classes),
                     "generation": macro_f1(truth, gen_preds, classes)},
        "unparseable_share": sum(p < 0 for p in gen_preds) / n,
        "generation_examples": answers[:5],
    }
    result["ratio"] = result["median_tweets_per_s"]["scoring"] / result["median_tweets_per_s"]["generation"]
    print(f"{'method':12s} {'tweets/s':>9s} {'macro-F1':>9s}")
    for m in ("scoring", "generation"):
        print(f"{m:12s} {result['median_tweets_per_s'][m]:9.1f} {result['macro_f1'][m]:9.3f}")
    print(f"unparseable generations: {result['unparseable_share']:.1%}; e.g. {answers[:3]}")
    if args.model != "smollm2":
        print("(random-init model: both macro-F1 values are near chance; the speed is what this measures)")
    headline = {"model": args.model, "dtype": resolved_dtype(setting), "cpu_capability": env["cpu_capability"],
                "generation_batch": gen_batch, "ratio": result["ratio"],
                "scoring_tweets_per_s": result["median_tweets_per_s"]["scoring"],
                "generation_tweets_per_s": result["median_tweets_per_s"]["generation"],
                "f1_scoring": result["macro_f1"]["scoring"], "f1_generation": result["macro_f1"]["generation"],
                "unparseable": result["unparseable_share"]}
    suffix = f"{args.model}{'' if gen_batch == args.batch_size else f'_gen{gen_batch}'}{'_quick' if args.quick else ''}"
    output = args.output or ROOT / "bench" / "results" / f"eval_{suffix}.json"
    write_json(output, {**headline, **result})
    print(f"wrote {output}")
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in headline.items()))
    return headline


if __name__ == "__main__":
    main()
