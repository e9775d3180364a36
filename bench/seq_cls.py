"""The approach many users pick instead of ours: a classification head on the same base, trained in the same minutes.

`AutoModelForSequenceClassification` on SmolLM2-135M-Instruct quantized to NF4 (the new 3-way `score` head kept
out of quantization), LoRA with the quality config's settings (peft `SEQ_CLS`, which also trains the head in full
through `modules_to_save`), cross-entropy on the class id, AdamW with linear decay, batch 16, gradient clipping
1.0, the compute dtype of `auto` (bf16 on a CPU with native bf16: fp32 LoRA and head weights under autocast,
attention in fp32, as ours). It reads the raw tweet, as such a head is usually fed, and pools the last token's
hidden state. Its traps, guarded here: pad == eos for SmolLM2 (`<|im_end|>`), so `config.pad_token_id` must be
set and no tweet may contain that token, else pooling lands early (transformers#35352, #34055); the head must be
trainable and saved (peft#310).

Its learning rate is its own, chosen on validation: every candidate trains for `--sweep-minutes`, the best
validation macro-F1 wins, and the winner trains for `--minutes` (the quality config's fit time) on a fresh
adapter and head, then is scored on the full validation and test splits; the record goes to
`bench/results/quality_smollm2.json`, named with its budget (steps or minutes). A single `--lrs` value skips the
sweep: the learning rate an earlier sweep chose, reused for a run on another budget.

    python bench/seq_cls.py                   # the sweep (3 x 8 min) and a 36-minute run: about 70 minutes
    python bench/seq_cls.py --steps 600       # the final run on exactly 600 batches of 16 instead
    python bench/seq_cls.py --lrs 1e-3 --minutes 16.4   # no sweep: a chosen rate, 16.4 training minutes
    python bench/seq_cls.py --quick           # 1-minute runs, 256 validation tweets, no test, nothing written
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from _common import machine, read_split, require_assets, save_weights  # noqa: E402
from _quality import save_record  # noqa: E402

CONFIG = "LoRA sequence-classification head, same base"
WARMUP_STEPS = 20
ATTENTION = "sdpa_fp32_on_cpu"


def learning_rates(text: str) -> list[float]:
    """`--lrs`, parsed before minutes of loading: positive numbers, comma-separated."""
    try:
        rates = [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    if any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError(f"{text!r}: every learning rate must be positive")
    return rates


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lrs", type=learning_rates, default="3e-4,1e-3,3e-3",
                   help="candidate learning rates, comma-separated; one value skips the sweep")
    p.add_argument("--sweep-minutes", type=float, default=8.0, help="training minutes per candidate")
    p.add_argument("--minutes", type=float, default=36.0, help="training minutes of the final run")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="train the final run for exactly these steps instead (a data budget, not a time budget)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--lora-alpha", type=int, default=32)
    p.add_argument("--lora-dropout", type=float, default=0.0)
    p.add_argument("--lora-targets", default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")
    p.add_argument("--quick", action="store_true", help="1-minute runs on 256 validation tweets, no test, no record")
    return p.parse_args(argv)


def register_attention() -> None:
    """sdpa computing in fp32 on a CPU in bf16, as our model's attention does (the bf16 CPU backward is slow)."""
    from transformers import AttentionInterface

    from sentiment_pl.model.precision import fp32_attention_on_cpu

    AttentionInterface.register(ATTENTION, fp32_attention_on_cpu(AttentionInterface()["sdpa"]))


def build(weights: str, tokenizer, args: argparse.Namespace, seed: int):
    """NF4 base + fresh LoRA + fresh head; the trainable weights in fp32."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, BitsAndBytesConfig

    from sentiment_pl.model.precision import resolve_dtype

    dtype = resolve_dtype("auto", "cpu")
    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                      bnb_4bit_compute_dtype=dtype, llm_int8_skip_modules=["score"])
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        weights, num_labels=3, dtype=dtype, quantization_config=quantization, attn_implementation=ATTENTION,
        device_map={"": "cpu"})
    model.config.pad_token_id = tokenizer.pad_token_id  # else pooling cannot find the last real token
    model.config.use_cache = False
    lora = LoraConfig(task_type="SEQ_CLS", r=args.lora_r, lora_alpha=args.lora_alpha,
                      lora_dropout=args.lora_dropout, target_modules=args.lora_targets.split(","))
    model = get_peft_model(model, lora)
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    heads = [n for n, p in model.named_parameters() if p.requires_grad and "score" in n]
    if not heads:
        raise RuntimeError("the classification head is not trainable (peft modules_to_save)")
    return model, dtype


def encode(tokenizer, texts: list[str]) -> list[list[int]]:
    ids = tokenizer(texts, add_special_tokens=False, truncation=True, max_length=256)["input_ids"]
    polluted = sum(tokenizer.pad_token_id in row for row in ids)
    if polluted:
        raise RuntimeError(f"{polluted} tweets contain the pad token: last-token pooling would land early")
    return ids


def length_grouped_batches(ids: list[list[int]], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar lengths (groups of 50 batches sorted by length), as our sampler does."""
    order = list(range(len(ids)))
    rng.shuffle(order)
    group = 50 * batch_size
    batches = []
    for start in range(0, len(order), group):
        chunk = sorted(order[start:start + group], key=lambda i: len(ids[i]))
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(ids: list[list[int]], picks: list[int], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids[i]) for i in picks)
    input_ids = torch.full((len(picks), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(picks), width), dtype=torch.long)
    for row, i in enumerate(picks):
        input_ids[row, :len(ids[i])] = torch.tensor(ids[i])
        mask[row, :len(ids[i])] = 1
    return input_ids, mask


def train(model, dtype, train_ids, train_labels, lr: float, minutes: float, args, pad_id: int,
          steps: int | None = None) -> dict:
    """Train for `steps`, or for `minutes` of the clock: then the learning rate decays linearly in elapsed time
    and training stops at the deadline, so the budget holds however the pace drifts (longer batches, a busy CPU)."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    start = time.perf_counter()
    deadline = start + minutes * 60
    warm_end = deadline  # when the warm-up ended (set below): the clock schedule decays from there

    def factor(step: int) -> float:
        if step < WARMUP_STEPS:
            return (step + 1) / WARMUP_STEPS
        if steps is not None:
            return max(0.0, (steps - step) / max(1, steps - WARMUP_STEPS))
        return max(0.0, (deadline - time.perf_counter()) / max(1e-9, deadline - warm_end))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    rng, labels = random.Random(args.seed), torch.tensor(train_labels)
    model.train()
    step, losses, epoch, done = 0, [], 0, False
    while not done:
        for picks in length_grouped_batches(train_ids, args.batch_size, rng):
            input_ids, mask = collate(train_ids, picks, pad_id)
            with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
                logits = model(input_ids=input_ids, attention_mask=mask).logits
            loss = torch.nn.functional.cross_entropy(logits.float(), labels[picks])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step, losses = step + 1, losses + [loss.item()]
            if step == WARMUP_STEPS:
                warm_end = time.perf_counter()
            schedule.step()
            if step % 100 == 0:
                left = f"/{steps}" if steps else f", {max(0.0, deadline - time.perf_counter()) / 60:.1f} min left"
                print(f"  step {step}{left}: loss {sum(losses[-100:]) / 100:.4f}", flush=True)
            done = step >= steps if steps else time.perf_counter() >= deadline
            if done:
                break
        epoch += 1
    seconds = time.perf_counter() - start
    return {"lr": lr, "steps": step, "tweets": step * args.batch_size, "epochs_started": epoch,
            "train_seconds": round(seconds, 1), "final_loss": sum(losses[-50:]) / min(50, len(losses))}


@torch.no_grad()
def evaluate(model, dtype, ids: list[list[int]], labels: list[int], pad_id: int) -> dict:
    from sentiment_pl.data.prompts import CLASS_NAMES
    from sentiment_pl.training.metrics import make_metrics, metrics_record

    model.eval()
    metrics = make_metrics(len(CLASS_NAMES))
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for start in range(0, len(order), 64):
        picks = order[start:start + 64]
        input_ids, mask = collate(ids, picks, pad_id)
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            logits = model(input_ids=input_ids, attention_mask=mask).logits
        metrics.update(logits.argmax(-1), torch.tensor([labels[i] for i in picks]))
    model.train()
    return metrics_record(metrics.compute(), CLASS_NAMES)


def main(argv: list[str] | None = None) -> dict:
    from transformers import AutoTokenizer

    args = parse_args(argv)
    require_assets("smollm2")
    if args.quick:
        args.sweep_minutes, args.minutes = 1.0, 1.0
    register_attention()
    env = machine()
    splits = {s: read_split(s) for s in ("train", "validation", "test")}
    if args.quick:
        splits["validation"] = tuple(part[:256] for part in splits["validation"])
    with tempfile.TemporaryDirectory(prefix="bench_seq_cls_") as tmp:
        load_start = time.perf_counter()
        weights, tokenizer_dir = save_weights("smollm2", Path(tmp) / "weights")
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        pad = tokenizer.pad_token_id
        ids = {s: encode(tokenizer, texts) for s, (texts, _) in splits.items()}
        labels = {s: lab for s, (_, lab) in splits.items()}
        prepare_seconds = time.perf_counter() - load_start
        sweep = []
        for lr in args.lrs if len(args.lrs) > 1 else []:
            model, dtype = build(weights, tokenizer, args, args.seed)
            run = train(model, dtype, ids["train"], labels["train"], lr, args.sweep_minutes, args, pad)
            run["val"] = evaluate(model, dtype, ids["validation"], labels["validation"], pad)
            print(f"lr {lr:g}: validation macro-F1 {run['val']['macro_f1']:.4f} "
                  f"(macro-recall {run['val']['macro_recall']:.4f}) after {run['tweets']} tweets", flush=True)
            sweep.append(run)
            del model
        best = max(sweep, key=lambda r: r["val"]["macro_f1"]) if sweep else {"lr": args.lrs[0]}
        fit_start = time.perf_counter()
        model, dtype = build(weights, tokenizer, args, args.seed)
        final = train(model, dtype, ids["train"], labels["train"], best["lr"], args.minutes, args, pad, args.steps)
        val = evaluate(model, dtype, ids["validation"], labels["validation"], pad)
        fit_seconds = time.perf_counter() - fit_start + prepare_seconds
        test = None if args.quick else evaluate(model, dtype, ids["test"], labels["test"], pad)
    print(f"chosen lr {best['lr']:g}; {final['tweets']} tweets in {final['train_seconds']:.0f} s; validation "
          f"macro-F1 {val['macro_f1']:.4f}, macro-recall {val['macro_recall']:.4f}", flush=True)
    if test is None:
        return {"sweep": sweep, "final": final, "val": val}
    print(f"test macro-F1 {test['macro_f1']:.4f}, macro-recall {test['macro_recall']:.4f}, "
          f"accuracy {test['accuracy']:.4f}", flush=True)
    budget = f"{args.steps} steps" if args.steps else f"{args.minutes:g} minutes"
    record = {"config": f"{CONFIG}, {budget}", "seed": args.seed, "fit_seconds": round(fit_seconds, 1),
              "val_macro_f1": val["macro_f1"], "val_macro_recall": val["macro_recall"],
              "test_macro_f1": test["macro_f1"], "test_macro_recall": test["macro_recall"],
              "test_accuracy": test["accuracy"], "test_class_f1": test["class_f1"], "lr": best["lr"],
              "train": final, "lr_sweep": [{k: (v["macro_f1"] if k == "val" else v) for k, v in r.items()}
                                           for r in sweep],
              "lora": {"r": args.lora_r, "alpha": args.lora_alpha, "dropout": args.lora_dropout,
                       "targets": args.lora_targets.split(",")},
              "command": "python bench/seq_cls.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": env}
    save_record(record)
    print(f"lr={best['lr']:g} val_macro_f1={val['macro_f1']:.4f} test_macro_f1={test['macro_f1']:.4f} "
          f"test_macro_recall={test['macro_recall']:.4f}")
    return record


if __name__ == "__main__":
    main()
