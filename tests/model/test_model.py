"""4-bit NF4 base + LoRA on CPU, for real (bitsandbytes, peft): what trains and what the gradients are."""

import bitsandbytes as bnb
import pytest
import torch
import torch.nn.functional as F

from conftest import TINY_ARCHITECTURE
from sentiment_pl.data.encoding import IGNORE_INDEX
from sentiment_pl.model.base import BaseModelSpec, LoraSettings, add_adapters, backbone_and_head
from sentiment_pl.model.base import load_base_model
from sentiment_pl.model.objective import completion_loss, supervised_positions


@pytest.fixture
def spec(tokenizer_dir):
    return BaseModelSpec(name=str(tokenizer_dir), random_init=True, architecture=TINY_ARCHITECTURE,
                         quantization="nf4", dtype="float32")


def batch():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 32000, (2, 12), generator=g)
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, 9:] = ids[:, 9:]
    return ids, torch.ones_like(ids), labels


def lora_grads(model):
    ids, mask, labels = batch()
    backbone, head = backbone_and_head(model)
    model.zero_grad()
    hidden = backbone(input_ids=ids, attention_mask=mask).last_hidden_state[supervised_positions(labels)[:2]]
    completion_loss(hidden, labels, head).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_4bit_base_with_lora_trains_only_adapters(spec):
    model = add_adapters(load_base_model(spec), spec, LoraSettings())
    k_proj = model.get_base_model().model.layers[0].self_attn.k_proj
    assert isinstance(k_proj.base_layer, bnb.nn.Linear4bit)
    assert k_proj.base_layer.weight.quant_state.quant_type == "nf4"
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    # r=8 on k_proj (64->32) and v_proj (64->32) in 2 layers: 2 * 2 * 8 * (64 + 32)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 2 * 2 * 8 * (64 + 32)


def test_gradients_are_unchanged_by_an_eval_forward(spec):
    # bitsandbytes repacks 4-bit weights for CPU inference on the first eval forward and then loses the
    # gradient through them; the adapter gradients after a validation pass must equal those before it.
    torch.manual_seed(0)
    model = add_adapters(load_base_model(spec), spec, LoraSettings(dropout=0.0))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)  # non-zero B so gradients reach every layer's A
    before = lora_grads(model)
    model.eval()
    with torch.no_grad():
        model(input_ids=batch()[0])
    model.train()
    after = lora_grads(model)
    assert all(before[n].abs().sum() > 0 for n in before)
    for name in before:
        torch.testing.assert_close(after[name], before[name], msg=name)


def test_module_loss_equals_cross_entropy_of_the_models_own_logits(spec):
    model = add_adapters(load_base_model(spec), spec, LoraSettings(dropout=0.0))
    ids, mask, labels = batch()
    backbone, head = backbone_and_head(model)
    hidden = backbone(input_ids=ids, attention_mask=mask).last_hidden_state[supervised_positions(labels)[:2]]
    ours = completion_loss(hidden, labels, head)
    logits = model(input_ids=ids, attention_mask=mask).logits.float()
    reference = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=IGNORE_INDEX)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)


def test_random_init_is_reproducible_from_init_seed(spec):
    a, b = load_base_model(spec), load_base_model(spec)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(pa, pb), name


def test_full_training_needs_an_unquantized_base(spec):
    with pytest.raises(ValueError, match="quantization: none"):
        add_adapters(load_base_model(spec), spec, None)
