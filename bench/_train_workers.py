"""The two training stacks under test, each run in its own process by bench/train_speed.py.

- `ours`: sentiment_pl's LightningModule and datamodule under a Lightning Trainer (length-grouped batches, the
  output layer at the answer positions only).
- `ours_full_head`: the same, but the loss goes through the model's own forward with `labels`, which builds the
  32,000-way logits at every position: the ablation that isolates the answer-only output layer.
- `ours_full_last_layer`: `ours` with `trim_last_layer=False`, the last decoder layer run at every position: the
  ablation that isolates running it at the answer positions only.
- `ours_fp32`: `ours` computing in float32 whatever the CPU: the ablation that isolates the compute dtype.
- `trl`: the seed's stack, TRL SFTTrainer with its completion-only loss on a prompt/completion dataset, given
  exactly our token ids and completion masks so both sides train on the same tokens.

Both sides load the same 4-bit base from the same folder and add the same LoRA; both run one warm-up step (their
own training_step on 12 extra tweets) before the clock starts, then one epoch over the timed tweets.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from _common import Setting, base_spec, peak_rss_mb, reset_peak_rss, resolved_dtype


class StepClock:
    """Per-step wall time and batch shape after the warm-up; the same bookkeeping for both stacks."""

    def __init__(self) -> None:
        self.start = 0.0
        self.ends: list[float] = []
        self.batches: list[tuple[int, int, int]] = []  # (samples, real tokens, padded tokens)
        self.peak_rss_mb = 0.0
        self.peak_rss_mb_loading = 0.0

    def started(self) -> None:
        self.start = time.perf_counter()

    def step_done(self) -> None:
        self.ends.append(time.perf_counter())

    def saw(self, attention_mask: torch.Tensor) -> None:
        self.batches.append((int(attention_mask.shape[0]), int(attention_mask.sum()), int(attention_mask.numel())))

    def result(self) -> dict[str, Any]:
        seconds = self.ends[-1] - self.start
        samples = sum(b[0] for b in self.batches[: len(self.ends)])
        real = sum(b[1] for b in self.batches[: len(self.ends)])
        padded = sum(b[2] for b in self.batches[: len(self.ends)])
        return {"steps": len(self.ends), "seconds": seconds, "samples": samples, "real_tokens": real,
                "samples_per_s": samples / seconds, "tokens_per_s": real / seconds,
                "padding_efficiency": real / padded, "seconds_per_step": seconds / len(self.ends),
                "peak_rss_mb_training": self.peak_rss_mb,
                "peak_rss_mb_process": max(self.peak_rss_mb, self.peak_rss_mb_loading)}


def encode(files: dict[str, str], setting: Setting):
    """Our encoder on the job's tweets: (timed examples, warm-up examples, tokenizer)."""
    from transformers import AutoTokenizer

    from sentiment_pl.data.encoding import ChatEncoder
    from sentiment_pl.data.prompts import PromptSpec
    from sentiment_pl.data.sources import LocalFiles

    tokenizer = AutoTokenizer.from_pretrained(setting.tokenizer)
    encoder, source = ChatEncoder(tokenizer, PromptSpec(), setting.max_length), LocalFiles(**files)
    out = []
    for split in ("train", "validation"):
        raw = source.load(split, PromptSpec().class_names)
        out.append(encoder.encode_all(raw.texts, raw.sentiments)[0])
    return out[0], out[1], tokenizer


# -- ours ---------------------------------------------------------------------------------------------------

def run_ours(job: dict[str, Any], full_head: bool = False, trim_last_layer: bool = True,
             dtype: str | None = None) -> dict[str, Any]:
    import lightning.pytorch as pl
    from functools import partial

    from sentiment_pl.data.batching import Collator
    from sentiment_pl.data.datamodule import TweetSentimentData
    from sentiment_pl.data.sources import LocalFiles
    from sentiment_pl.model.base import LoraSettings
    from sentiment_pl.training.module import SentimentClassifier

    setting = Setting(**job["setting"])
    if dtype is not None:
        setting = replace(setting, dtype=dtype)
    clock = StepClock()
    lora = LoraSettings(r=setting.lora_r, alpha=setting.lora_alpha, dropout=setting.lora_dropout,
                        target_modules=setting.lora_targets)
    cls = FullHeadClassifier if full_head else SentimentClassifier
    module = cls(base=base_spec(setting), lora=lora, optimizer=partial(torch.optim.AdamW, lr=setting.lr),
                 lr_schedule="linear", trim_last_layer=trim_last_layer)
    # The warm-up tweets stand in as the validation split; validation itself is switched off.
    data = TweetSentimentData(source=LocalFiles(**job["files"]), tokenizer=setting.tokenizer,
                              batch_size=setting.batch_size, max_length=setting.max_length)

    class Clock(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            clock.peak_rss_mb_loading = reset_peak_rss()
            warm = Collator(data.tokenizer.pad_token_id)(list(data.datasets["validation"])[: setting.batch_size])
            pl_module.training_step(warm, 0).backward()  # compiles kernels and allocates, like the first step
            pl_module.zero_grad(set_to_none=True)
            clock.started()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            clock.saw(batch["attention_mask"])
            clock.step_done()

        def on_train_end(self, trainer, pl_module):
            clock.peak_rss_mb = peak_rss_mb()

    trainer = pl.Trainer(accelerator="cpu", devices=1, precision="32-true", max_epochs=1, limit_val_batches=0,
                         num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[Clock()])
    trainer.fit(module, datamodule=data)
    return clock.result()


def _full_head_classifier():
    from sentiment_pl.training.module import SentimentClassifier

    class FullHead(SentimentClassifier):
        """The ablation: the model's own forward with labels, i.e. the output layer at every position."""

        def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
            out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                             labels=batch["labels"])
            self.log("train/loss", out.loss, batch_size=len(batch["input_ids"]))
            return out.loss

    return FullHead


FullHeadClassifier = _full_head_classifier()


# -- the seed's stack: TRL SFTTrainer -------------------------------------------------------------------------

def run_trl(job: dict[str, Any]) -> dict[str, Any]:
    import tempfile

    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from sentiment_pl.model.base import load_base_model

    setting = Setting(**job["setting"])
    timed, warm, tokenizer = encode(job["files"], setting)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token

    def rows(examples):
        # A processed prompt/completion dataset: our ids, and 1 on exactly the tokens our labels supervise.
        return {"input_ids": [e.input_ids for e in examples],
                "completion_mask": [[int(x != -100) for x in e.labels] for e in examples]}

    clock = StepClock()
    out_dir = tempfile.mkdtemp(prefix="bench_trl_")
    bf16 = resolved_dtype(setting) == "bfloat16"  # the same compute dtype as ours: TRL's own bf16 autocast
    args = SFTConfig(output_dir=out_dir, per_device_train_batch_size=setting.batch_size, num_train_epochs=1,
                     learning_rate=setting.lr, lr_scheduler_type="linear", bf16=bf16, fp16=False, use_cpu=True,
                     gradient_checkpointing=setting.gradient_checkpointing,
                     gradient_checkpointing_kwargs={"use_reentrant": False}, completion_only_loss=True,
                     max_length=setting.max_length, save_strategy="no", report_to=[], logging_steps=10_000,
                     disable_tqdm=True, dataloader_num_workers=0, seed=0)
    peft_config = LoraConfig(r=setting.lora_r, lora_alpha=setting.lora_alpha, lora_dropout=setting.lora_dropout,
                             target_modules=list(setting.lora_targets), bias="none", task_type="CAUSAL_LM")
    model = load_base_model(base_spec(setting))
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_dict(rows(timed)),
                         processing_class=tokenizer, peft_config=peft_config)
    collate = trainer.data_collator

    def counting_collator(features):
        batch = collate(features)
        clock.saw(batch["attention_mask"])
        return batch

    trainer.data_collator = counting_collator
    warm_batch = collate(Dataset.from_dict(rows(warm[: setting.batch_size])).to_list())

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            clock.peak_rss_mb_loading = reset_peak_rss()
            # Set by the training loop before each step; the warm-up step comes before the loop's first.
            trainer.current_gradient_accumulation_steps = args.gradient_accumulation_steps
            trainer.training_step(model, dict(warm_batch))  # forward + backward, TRL's own
            model.zero_grad(set_to_none=True)
            clock.started()

        def on_step_end(self, args, state, control, **kwargs):
            clock.step_done()

        def on_train_end(self, args, state, control, **kwargs):
            clock.peak_rss_mb = peak_rss_mb()

    trainer.add_callback(Clock())
    trainer.train()
    return clock.result()


WORKERS = {"ours": run_ours, "ours_full_head": lambda job: run_ours(job, full_head=True), "trl": run_trl,
           "ours_full_last_layer": lambda job: run_ours(job, trim_last_layer=False),
           "ours_fp32": lambda job: run_ours(job, dtype="float32")}


def run_worker(name: str, job_file: str) -> None:
    import json

    from _common import write_json

    job = json.loads(Path(job_file).read_text())
    torch.manual_seed(0)
    write_json(Path(job["result"]), WORKERS[name](job))
