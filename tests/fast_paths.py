"""Shared by the tests of the fast paths (`sentiment_pl.model.fast`): the tolerances of their equality checks,
a tiny 4-bit classifier with non-zero adapters, the three ways rows reach the decoder, and right-padded batches of
real tweets.

Tolerances, in float32, where two computations differ only in summation order (measured: ~1e-6 relative):
hidden states and losses rtol 1e-5 / atol 1e-5; adapter gradients (up to ~0.5) rtol 1e-5 / atol 1e-6.
"""

import dataclasses

import torch

from conftest import TINY_ARCHITECTURE
from sentiment_pl.data.batching import Collator
from sentiment_pl.data.encoding import ChatEncoder
from sentiment_pl.data.prompts import PromptSpec
from sentiment_pl.model.base import BaseModelSpec, LoraSettings
from sentiment_pl.training.module import SentimentClassifier

HIDDEN = {"rtol": 1e-5, "atol": 1e-5}
GRADS = {"rtol": 1e-5, "atol": 1e-6}
# How rows reach the decoder: the shared system turn run once, rows packed without one, plain padded rows.
MODES = ("system-turn", "packed-only", "padded-rows")


def use_rows(module: SentimentClassifier, task, mode: str) -> None:
    """Give `module` the encoder's `task`, its rows reaching the decoder as `mode` says."""
    module.share_prefix = mode != "padded-rows"
    module.task = dataclasses.replace(task, prefix_ids=()) if mode == "packed-only" else task


def whole_answer_task(tokenizer, task):
    """`task` with classes whose first answer tokens collide ("pos", "positive", ...), so that classes are
    scored by their whole answers; built by an encoder of the same system prompt."""
    colliding = ChatEncoder(tokenizer, PromptSpec(class_names=("pos", "positive", "neutral")), 256).task
    assert not colliding.first_tokens_distinct and colliding.prefix_ids == task.prefix_ids
    return colliding


def make_classifier(tokenizer_dir, encoder, gradient_checkpointing: bool = False) -> SentimentClassifier:
    """A 4-bit tiny Llama + LoRA (no dropout, random B) in a SentimentClassifier, outside a Trainer."""
    spec = BaseModelSpec(name=str(tokenizer_dir), random_init=True, architecture=TINY_ARCHITECTURE,
                         quantization="nf4", dtype="float32", gradient_checkpointing=gradient_checkpointing)
    module = SentimentClassifier(spec, LoraSettings(dropout=0.0))
    module.configure_model()
    torch.manual_seed(0)
    for name, p in module.model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)  # B starts at zero; non-zero B gives every A a gradient
    module.task = encoder.task  # as setup() takes it from the data module
    module.model.train()
    return module


def real_batch(encoder, tweets, start: int, size: int) -> dict[str, torch.Tensor]:
    """Right-padded batch of real tweets; their lengths differ, so most rows are padded."""
    items = [(i, encoder.encode(tweets.texts[i], tweets.sentiments[i])) for i in range(start, start + size)]
    batch = Collator(pad_token_id=0)(items)
    assert (batch["attention_mask"] == 0).any()
    return batch
