"""Compiled decoder layers: the same loss, adapter gradients and class scores as the eager model, for every batch
length (one dynamic-shape graph), and the same parameter names (checkpoints load either way).

Checked on the 4-bit tiny Llama with LoRA (random B, so every adapter has a gradient), real tweets and the real
tokenizer, with the shared system-turn prefix and the trimmed last layer on (the defaults, as `fit` runs them), with
and without gradient checkpointing.
Tolerances as in test_prefix.py (float32; fused kernels differ only in summation order; tests/fast_paths.py).
"""

import pytest
import torch
from torch._dynamo.utils import counters

from fast_paths import GRADS, HIDDEN, make_classifier, real_batch
from sentiment_pl.data.encoding import ChatEncoder
from sentiment_pl.data.prompts import PromptSpec
from sentiment_pl.model.fast.compiled import compile_decoder_layers
from sentiment_pl.model.objective import completion_loss, supervised_positions


@pytest.fixture(scope="module")
def encoder(tokenizer):
    return ChatEncoder(tokenizer, PromptSpec(), max_length=256)


def training_pass(module, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    module.model.zero_grad()
    read = supervised_positions(batch["labels"])[:2]
    loss = completion_loss(module.hidden_states(batch["input_ids"], batch["attention_mask"], read),
                           batch["labels"], module.head)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in module.model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("checkpointing", [False, True], ids=["plain", "gradient-checkpointing"])
def test_compiled_layers_train_and_score_as_the_eager_ones(tokenizer_dir, encoder, tweets, checkpointing):
    module = make_classifier(tokenizer_dir, encoder, gradient_checkpointing=checkpointing)
    assert module.last_layer_trimmed
    # Three batches of three lengths (packed rows: every batch its own length): one graph must serve them all.
    batches = [real_batch(encoder, tweets, start, size) for start, size in ((0, 6), (6, 5), (11, 7))]
    assert len({b["input_ids"].shape[1] for b in batches}) == 3
    eager = [training_pass(module, b) for b in batches]
    with torch.no_grad():
        eager_scores = [module.class_log_probs(b) for b in batches]
    names = list(module.model.state_dict())

    graphs = counters["stats"]["unique_graphs"]
    compile_decoder_layers(module.model.get_base_model().model)
    layers = module.model.get_base_model().model.layers
    assert [layer._compiled_call_impl is not None for layer in layers] == [True] * (len(layers) - 1) + [False]
    assert list(module.model.state_dict()) == names  # no `_orig_mod.` in a checkpoint's keys
    for batch, (ref_loss, ref_grads) in zip(batches, eager):
        loss, grads = training_pass(module, batch)
        torch.testing.assert_close(loss, ref_loss, **HIDDEN)
        assert grads.keys() == ref_grads.keys()
        for name, ref in ref_grads.items():
            assert ref.abs().sum() > 0, name
            torch.testing.assert_close(grads[name], ref, **GRADS, msg=name)
    with torch.no_grad():
        for batch, ref in zip(batches, eager_scores):
            torch.testing.assert_close(module.class_log_probs(batch), ref, rtol=0, atol=1e-5)
    assert counters["stats"]["unique_graphs"] > graphs  # compiled, not silently run eager
