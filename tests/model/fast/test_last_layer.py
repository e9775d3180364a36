"""The last decoder layer at read positions only: the same loss, gradients and scores as the full layer, for less.

Checked on the 4-bit tiny Llama with LoRA (random B, so every adapter has a gradient), on real tweets and the real
tokenizer, through the three ways rows reach the decoder: the shared system-turn prefix, packed rows without one,
and plain padded rows; with and without gradient checkpointing. Tolerances as in test_prefix.py (float32, the
computations differ only in summation order; tests/fast_paths.py).
"""

import copy

import pytest
import torch

from conftest import TINY_ARCHITECTURE
from fast_paths import GRADS, HIDDEN, MODES, make_classifier, real_batch, use_rows, whole_answer_task
from sentiment_pl.data.encoding import ChatEncoder
from sentiment_pl.data.prompts import PromptSpec
from sentiment_pl.model.base import BaseModelSpec, load_base_model
from sentiment_pl.model.fast import read_hidden_states, union_positions
from sentiment_pl.model.fast.last_layer import ReadPositionsDecoderLayer, read_positions_last_layer
from sentiment_pl.model.objective import completion_loss, scoring_positions, supervised_positions
from sentiment_pl.training.module import SentimentClassifier


@pytest.fixture(scope="module")
def encoder(tokenizer):
    return ChatEncoder(tokenizer, PromptSpec(), max_length=256)


def loss_and_grads(module, batches, trimmed: bool) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    """Gradient accumulation over micro-batches, each loss read at its supervised positions only."""
    module.last_layer_trimmed = trimmed
    module.model.zero_grad()
    losses = []
    for batch in batches:
        read = supervised_positions(batch["labels"])[:2]
        hidden = module.hidden_states(batch["input_ids"], batch["attention_mask"], read)
        loss = completion_loss(hidden, batch["labels"], module.head)
        (loss / len(batches)).backward()
        losses.append(loss.detach())
    grads = {n: p.grad.clone() for n, p in module.model.named_parameters() if p.requires_grad}
    return losses, grads


def assert_same_training(module, batches) -> None:
    losses, grads = loss_and_grads(module, batches, trimmed=True)
    ref_losses, ref_grads = loss_and_grads(module, batches, trimmed=False)
    for loss, ref in zip(losses, ref_losses):
        torch.testing.assert_close(loss, ref, **HIDDEN)
    assert grads.keys() == ref_grads.keys()
    for name, ref in ref_grads.items():
        assert ref.abs().sum() > 0, name
        torch.testing.assert_close(grads[name], ref, **GRADS, msg=name)


@pytest.fixture
def classifier(tokenizer_dir, encoder):
    """A fresh one for every test: the tests switch its prefix, trimming and scoring, and run backward on it."""
    module = make_classifier(tokenizer_dir, encoder)
    assert module.last_layer_trimmed  # on by default, for a Llama
    return module


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("checkpointing", [False, True], ids=["plain", "gradient-checkpointing"])
def test_loss_and_adapter_gradients_equal_the_full_last_layer(classifier, tokenizer_dir, encoder, tweets,
                                                              checkpointing, mode):
    if checkpointing:
        classifier = make_classifier(tokenizer_dir, encoder, gradient_checkpointing=True)
    layers = classifier.model.get_base_model().model.layers
    assert type(layers[-1]) is ReadPositionsDecoderLayer and layers[-1].gradient_checkpointing == checkpointing
    use_rows(classifier, encoder.task, mode)
    assert_same_training(classifier, [real_batch(encoder, tweets, 0, 6), real_batch(encoder, tweets, 6, 5)])


@pytest.mark.parametrize("mode", list(MODES))
def test_the_last_layer_runs_at_the_read_positions_only(classifier, encoder, tweets, mode):
    use_rows(classifier, encoder.task, mode)
    batch = real_batch(encoder, tweets, 40, 6)
    read = supervised_positions(batch["labels"])[:2]
    last = classifier.model.get_base_model().model.layers[-1]
    seen = {}

    def record(name):
        def hook(module, args, out):
            seen.setdefault(name, args[0].shape[:-1])  # the first call: the trimmed one
        return hook

    watched = {"q_proj": last.self_attn.q_proj, "k_proj": last.self_attn.k_proj, "mlp": last.mlp}
    hooks = [module.register_forward_hook(record(name)) for name, module in watched.items()]
    backbone = classifier.model.get_base_model().get_decoder()
    try:
        with torch.no_grad():
            hidden = classifier.hidden_states(batch["input_ids"], batch["attention_mask"], read)
            full = backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    finally:
        for hook in hooks:
            hook.remove()
    assert seen["q_proj"].numel() == seen["mlp"].numel() == len(read[0])
    assert seen["k_proj"].numel() > 10 * len(read[0])  # keys and values: every position
    assert hidden.shape == (len(read[0]), full.shape[-1])  # the read positions and nothing else
    torch.testing.assert_close(hidden, full[read], **HIDDEN)


@pytest.mark.parametrize("first_token", [True, False], ids=["first-token", "whole-answer"])
@pytest.mark.parametrize("mode", list(MODES))
def test_class_scores_and_evaluation_equal_the_full_last_layer(classifier, tokenizer, encoder, tweets, mode,
                                                               first_token):
    use_rows(classifier, encoder.task if first_token else whole_answer_task(tokenizer, encoder.task), mode)
    batch = real_batch(encoder, tweets, 30, 7)
    results = []
    for trimmed in (True, False):
        classifier.last_layer_trimmed = trimmed
        with torch.no_grad():
            results.append((classifier.class_log_probs(batch), read_mask_hidden(classifier, batch)))
    (scores, hidden), (ref_scores, ref_hidden) = results
    torch.testing.assert_close(scores, ref_scores, rtol=0, atol=1e-5)
    torch.testing.assert_close(hidden, ref_hidden, **HIDDEN)


def read_mask_hidden(classifier, batch) -> torch.Tensor:
    """Hidden states at the union of the loss's and the scores' positions, as `_evaluate` reads them."""
    ids, lengths = batch["input_ids"], batch["prompt_lengths"]
    read, _ = union_positions(ids.shape, supervised_positions(batch["labels"])[:2], scoring_positions(lengths))
    return classifier.hidden_states(ids, batch["attention_mask"], read)


def test_reading_a_padded_position_of_packed_rows_is_refused(classifier, encoder, tweets):
    use_rows(classifier, encoder.task, "system-turn")
    batch = real_batch(encoder, tweets, 0, 4)
    padded = (~batch["attention_mask"].bool()).nonzero()[0]
    with pytest.raises(ValueError, match="padding"), torch.no_grad():
        classifier.hidden_states(batch["input_ids"], batch["attention_mask"], (padded[:1], padded[1:]))


def test_union_positions_is_the_ordered_union_and_says_where_each_set_sits():
    first, second = (torch.tensor([2, 0]), torch.tensor([1, 4])), (torch.tensor([0, 1, 2]), torch.tensor([4, 0, 1]))
    (rows, cols), (in_first, in_second) = union_positions(torch.Size([3, 5]), first, second)
    assert list(zip(rows.tolist(), cols.tolist())) == [(0, 4), (1, 0), (2, 1)]
    for (set_rows, set_cols), index in ((first, in_first), (second, in_second)):
        assert torch.equal(rows[index], set_rows) and torch.equal(cols[index], set_cols)


def test_a_trimmed_read_needs_the_trimmed_layer(tokenizer_dir):
    llama = load_base_model(BaseModelSpec(name=str(tokenizer_dir), random_init=True,
                                          architecture=TINY_ARCHITECTURE, quantization="none", dtype="float32"))
    ids = torch.randint(3, 32000, (2, 6), generator=torch.Generator().manual_seed(0))
    with pytest.raises(RuntimeError, match="read_positions_last_layer"):
        read_hidden_states(llama.model, ids, torch.ones_like(ids), torch.tensor([0]), torch.tensor([5]), None,
                           trimmed=True)


def test_full_training_gradients_of_every_weight_equal_the_full_last_layer(tokenizer_dir, encoder, tweets):
    """`lora: null`: the trimmed layer's own query, output projection and MLP weights, and the tied embeddings,
    get the full layer's gradients."""
    architecture = dict(TINY_ARCHITECTURE, num_hidden_layers=1, tie_word_embeddings=True)
    spec = BaseModelSpec(name=str(tokenizer_dir), random_init=True, architecture=architecture, quantization="none",
                         dtype="float32")
    module = SentimentClassifier(spec, lora=None)
    module.configure_model()
    use_rows(module, encoder.task, "packed-only")
    assert module.last_layer_trimmed
    module.model.train()
    assert_same_training(module, [real_batch(encoder, tweets, 60, 6)])
    # A deep copy (as weight averaging makes) keeps the trimmed layer and its results.
    copied = copy.deepcopy(module)
    assert type(copied.model.model.layers[-1]) is ReadPositionsDecoderLayer
    assert_same_training(copied, [real_batch(encoder, tweets, 60, 6)])


def test_other_architectures_keep_their_full_last_layer(tokenizer_dir):
    from transformers import MistralConfig, MistralForCausalLM

    config = MistralConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2)
    model = MistralForCausalLM(config)
    layer_class = type(model.model.layers[-1])
    assert not read_positions_last_layer(model.model)
    assert type(model.model.layers[-1]) is layer_class
    llama = load_base_model(BaseModelSpec(name=str(tokenizer_dir), random_init=True,
                                          architecture=TINY_ARCHITECTURE, quantization="none", dtype="float32"))
    assert read_positions_last_layer(llama.model) and read_positions_last_layer(llama.model)  # idempotent
    assert type(llama.model.layers[0]) is not ReadPositionsDecoderLayer
