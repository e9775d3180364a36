"""Residual dropout: where the hooks drop, by how much, and that evaluation never sees them."""

from dataclasses import replace

import pytest
import torch

from conftest import TINY_ARCHITECTURE
from sentiment_pl.model import BaseModelSpec, load_base_model


@pytest.fixture
def spec(tokenizer_dir):
    return BaseModelSpec(name=str(tokenizer_dir), random_init=True, architecture=TINY_ARCHITECTURE,
                         quantization="none", dtype="float32")


def ids():
    return torch.randint(3, 32000, (2, 12), generator=torch.Generator().manual_seed(0))


def observe(module, seen: list):
    """Record what the module hands on, after the hooks registered before this one."""
    return module.register_forward_hook(
        lambda _m, _i, out: seen.append((out[0] if isinstance(out, tuple) else out).detach().clone()))


def test_training_drops_embeddings_and_each_block_output(spec):
    plain = load_base_model(spec)
    dropped = load_base_model(replace(spec, residual_dropout=0.5))
    targets = [dropped.get_input_embeddings()]
    for layer in dropped.model.layers:
        targets += [layer.self_attn, layer.mlp]
    seen: list[list[torch.Tensor]] = [[] for _ in targets]
    for target, record in zip(targets, seen):
        observe(target, record)
    dropped.train()
    torch.manual_seed(0)
    dropped(input_ids=ids())
    for record in seen:
        zeros = (record[0] == 0).float().mean().item()
        assert 0.45 < zeros < 0.55, zeros
    # Kept embedding entries are scaled by 1 / (1 - p), the rest are exactly zero.
    kept = seen[0][0] != 0
    expected = plain.get_input_embeddings()(ids()) * 2
    torch.testing.assert_close(seen[0][0][kept], expected[kept], rtol=0, atol=0)


def test_evaluation_is_the_model_without_dropout(spec):
    plain = load_base_model(spec).eval()
    dropped = load_base_model(replace(spec, residual_dropout=0.5)).eval()
    assert torch.equal(dropped(input_ids=ids()).logits, plain(input_ids=ids()).logits)
    dropped.train()
    assert not torch.equal(dropped(input_ids=ids()).logits, plain(input_ids=ids()).logits)


def test_no_dropout_adds_no_hooks(spec):
    assert not any(m._forward_hooks for m in load_base_model(spec).modules())


@pytest.mark.parametrize("p", [-0.1, 1.0])
def test_out_of_range_dropout_is_refused_naming_the_key(spec, p):
    with pytest.raises(ValueError, match=rf"model\.base\.residual_dropout={p} must be in \[0, 1\)"):
        replace(spec, residual_dropout=p)
