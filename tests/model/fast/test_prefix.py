"""The shared system-turn prefix in the model: computing it once per batch changes nothing. (Where the split
falls, the encoder's side: tests/data/test_system_turn.py.)

Equality is checked on a 4-bit NF4 tiny Llama with LoRA on k_proj/v_proj (non-zero B, so every adapter has a
gradient), with and without gradient checkpointing, with gradient accumulation, on real tweets with the real
tokenizer, right-padded batches of different lengths. Tolerances, in float32, where the two computations differ
only in summation order (measured: ~1e-6 relative): hidden states and losses rtol 1e-5 / atol 1e-5; adapter
gradients (up to ~0.5) rtol 1e-5 / atol 1e-6; class log-probabilities atol 1e-5.
"""

import pytest
import torch

from conftest import TINY_ARCHITECTURE
from fast_paths import GRADS, HIDDEN, make_classifier, real_batch, use_rows, whole_answer_task
from sentiment_pl.data.batching import Collator
from sentiment_pl.data.encoding import ChatEncoder
from sentiment_pl.data.prompts import PromptSpec
from sentiment_pl.model.base import BaseModelSpec, LoraSettings, load_base_model
from sentiment_pl.model.fast import read_hidden_states
from sentiment_pl.model.fast.prefix import use_shared_prefix_attention
from sentiment_pl.model.objective import completion_loss, supervised_positions
from sentiment_pl.training.module import SentimentClassifier


@pytest.fixture(scope="module")
def encoder(tokenizer):
    return ChatEncoder(tokenizer, PromptSpec(), max_length=256)


# -- the model: shared equals unshared ---------------------------------------------------------------------------


@pytest.fixture
def classifier(tokenizer_dir, encoder):
    """A fresh one for every test: the tests set its attributes and run backward on it."""
    return make_classifier(tokenizer_dir, encoder)


def loss_and_grads(module, batches, task, mode: str) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    """Gradient accumulation over micro-batches, as the Trainer does: each loss / len(batches), backward each;
    the last layer in full.

    Mode `padded-rows` is the unshared computation; `packed-only` packs the rows without sharing anything."""
    use_rows(module, task, mode)
    module.last_layer_trimmed = False
    module.model.zero_grad()
    losses = []
    for batch in batches:
        hidden = module.hidden_states(batch["input_ids"], batch["attention_mask"],
                                      supervised_positions(batch["labels"])[:2])
        loss = completion_loss(hidden, batch["labels"], module.head)
        (loss / len(batches)).backward()
        losses.append(loss.detach())
    grads = {n: p.grad.clone() for n, p in module.model.named_parameters() if p.requires_grad}
    return losses, grads


@pytest.mark.parametrize("shared", [True, False], ids=["system-turn", "packed-only"])
@pytest.mark.parametrize("checkpointing", [False, True], ids=["plain", "gradient-checkpointing"])
def test_loss_and_adapter_gradients_equal_the_unshared_computation(classifier, tokenizer_dir, encoder, tweets,
                                                                   checkpointing, shared):
    if checkpointing:
        classifier = make_classifier(tokenizer_dir, encoder, gradient_checkpointing=True)
    # The flag transformers' checkpointed layers read: the layers really replay in backward.
    assert classifier.model.get_base_model().model.layers[0].gradient_checkpointing == checkpointing
    batches = [real_batch(encoder, tweets, 0, 6), real_batch(encoder, tweets, 6, 5)]
    losses, grads = loss_and_grads(classifier, batches, encoder.task, "system-turn" if shared else "packed-only")
    ref_losses, ref_grads = loss_and_grads(classifier, batches, encoder.task, "padded-rows")
    for loss, ref in zip(losses, ref_losses):
        torch.testing.assert_close(loss, ref, **HIDDEN)
    assert len(grads) == 2 * 2 * 2  # lora_A and lora_B on k_proj and v_proj in 2 layers
    for name, ref in ref_grads.items():
        assert ref.abs().sum() > 0, name
        torch.testing.assert_close(grads[name], ref, **GRADS, msg=name)


def test_hidden_states_equal_and_padding_changes_nothing(classifier, encoder, tweets):
    backbone = classifier.model.get_base_model().get_decoder()
    batch = real_batch(encoder, tweets, 20, 6)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    real = mask.bool()
    rows, cols = real.nonzero(as_tuple=True)  # every real token
    with torch.no_grad():
        shared = read_hidden_states(backbone, ids, mask, rows, cols, encoder.prefix_ids, trimmed=False)
        full = backbone(input_ids=ids, attention_mask=mask).last_hidden_state
        torch.testing.assert_close(shared, full[real], **HIDDEN)
        for row in range(len(ids)):  # each row alone, unpadded, gives the same hidden states
            n = int(mask[row].sum())
            alone = read_hidden_states(backbone, ids[row:row + 1, :n], mask[row:row + 1, :n],
                                       torch.zeros(n, dtype=torch.long), torch.arange(n), encoder.prefix_ids,
                                       trimmed=False)
            torch.testing.assert_close(shared[rows == row], alone, **HIDDEN)


@pytest.mark.parametrize("shared", [True, False], ids=["system-turn", "packed-only"])
def test_padding_is_never_computed(classifier, encoder, tweets, shared):
    """The layers see the prefix once and every row's real tokens, not one padded position."""
    backbone = classifier.model.get_base_model().get_decoder()
    batch = real_batch(encoder, tweets, 20, 6)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    seen = []
    hook = backbone.layers[0].mlp.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[1]))
    real = mask.bool()
    try:
        with torch.no_grad():
            hidden = read_hidden_states(backbone, ids, mask, *real.nonzero(as_tuple=True),
                                        encoder.prefix_ids if shared else (), trimmed=False)
    finally:
        hook.remove()
    with torch.no_grad():
        full = backbone(input_ids=ids, attention_mask=mask).last_hidden_state
    prefix = len(encoder.prefix_ids) if shared else 0
    assert seen == [prefix + int(mask[:, prefix:].sum())]  # one decoder call, over the real tokens only
    assert seen[0] < prefix + ids[:, prefix:].numel()  # the batch was padded: something was left out
    torch.testing.assert_close(hidden, full[real], **HIDDEN)
    padded = (~real).nonzero()[0]
    with pytest.raises(ValueError, match="padding"), torch.no_grad():  # it is not there to read
        read_hidden_states(backbone, ids, mask, padded[:1], padded[1:], encoder.prefix_ids if shared else (),
                           trimmed=False)


@pytest.mark.parametrize("first_token", [True, False], ids=["first-token", "whole-answer"])
def test_class_scores_equal_the_unshared_scores(classifier, tokenizer, encoder, tweets, first_token):
    task = encoder.task if first_token else whole_answer_task(tokenizer, encoder.task)
    unlabeled = [(i, encoder.encode(tweets.texts[i])) for i in range(40, 47)]  # prompts alone, as in predict
    for batch in (real_batch(encoder, tweets, 30, 7), Collator(0)(unlabeled)):
        with torch.no_grad():
            use_rows(classifier, task, "system-turn")
            shared = classifier.class_log_probs(batch)
            use_rows(classifier, task, "padded-rows")
            reference = classifier.class_log_probs(batch)
        assert shared.shape == (7, 3)
        torch.testing.assert_close(shared, reference, rtol=0, atol=1e-5)


def test_rows_that_do_not_start_with_the_prefix_are_refused(classifier, encoder, tweets):
    backbone = classifier.model.get_base_model().get_decoder()
    batch = real_batch(encoder, tweets, 0, 3)
    left_padded = torch.roll(batch["input_ids"], 1, dims=1), torch.roll(batch["attention_mask"], 1, dims=1)
    with pytest.raises(ValueError, match="model.share_prefix: false"):
        read_hidden_states(backbone, *left_padded, torch.tensor([0]), torch.tensor([50]), encoder.prefix_ids,
                           trimmed=False)


def test_other_attention_kernels_are_refused_naming_the_keys(tokenizer_dir):
    spec = BaseModelSpec(name=str(tokenizer_dir), attn_implementation="eager")
    with pytest.raises(ValueError, match="model.base.attn_implementation.*model.share_prefix: false"):
        SentimentClassifier(spec)
    SentimentClassifier(spec, share_prefix=False)


def test_the_switched_attention_leaves_ordinary_forwards_bit_identical(tokenizer_dir):
    spec = BaseModelSpec(name=str(tokenizer_dir), random_init=True, architecture=TINY_ARCHITECTURE,
                         quantization="nf4", dtype="float32")
    model = load_base_model(spec)
    ids = torch.randint(3, 32000, (3, 20), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 12:] = 0
    with torch.no_grad():
        before = model(input_ids=ids, attention_mask=mask).logits
        use_shared_prefix_attention(model)
        assert model.config._attn_implementation == "sentiment_pl_shared_prefix_sdpa"
        assert torch.equal(model(input_ids=ids, attention_mask=mask).logits, before)
        with pytest.raises(RuntimeError, match="use_shared_prefix_attention"):
            read_hidden_states(load_base_model(spec).get_decoder(), ids, mask, torch.tensor([0]), torch.tensor([5]),
                               ids[0, :4].tolist(), trimmed=False)


def fit_and_predict(tmp_path, tokenizer_dir, share_prefix: bool) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Two optimizer steps of plain SGD over 2 micro-batches each, then predict: trained adapters and probs."""
    import lightning.pytorch as pl

    from sentiment_pl.data.datamodule import TweetSentimentData
    from sentiment_pl.data.sources import LocalFiles

    spec = BaseModelSpec(name=str(tokenizer_dir), random_init=True, architecture=TINY_ARCHITECTURE,
                         quantization="nf4", dtype="float32")
    module = SentimentClassifier(spec, LoraSettings(dropout=0.0), share_prefix=share_prefix,
                                 lr_schedule="constant", optimizer=lambda params: torch.optim.SGD(params, lr=1.0))
    files = {split: str(tmp_path / f"{split}.jsonl") for split in ("train", "validation", "test")}
    data = TweetSentimentData(LocalFiles(**files), tokenizer=str(tokenizer_dir), batch_size=6, max_length=128)
    pl.seed_everything(0)
    trainer = pl.Trainer(accelerator="cpu", max_steps=2, accumulate_grad_batches=2, limit_val_batches=0,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, datamodule=data)
    assert module.task == data.task and module.prefix_ids == (data.task.prefix_ids if share_prefix else None)
    probs = torch.cat([p["probs"] for p in trainer.predict(module, datamodule=data)])
    adapters = {n: p.detach().clone() for n, p in module.model.named_parameters() if p.requires_grad}
    return adapters, probs


@pytest.mark.slow
def test_training_with_accumulation_and_prediction_equal_the_unshared_run(tmp_path, tokenizer_dir, tweets):
    import json

    for split, rows in {"train": range(0, 24), "validation": range(24, 30), "test": range(30, 45)}.items():
        with open(tmp_path / f"{split}.jsonl", "w") as f:
            for i in rows:
                f.write(json.dumps({"text": tweets.texts[i], "label": tweets.sentiments[i]}) + "\n")
    shared, shared_probs = fit_and_predict(tmp_path, tokenizer_dir, share_prefix=True)
    reference, reference_probs = fit_and_predict(tmp_path, tokenizer_dir, share_prefix=False)
    moved = 0
    for name, ref in reference.items():
        torch.testing.assert_close(shared[name], ref, **GRADS, msg=name)
        moved += "lora_B" in name and ref.abs().sum() > 0
    assert moved == 4  # every B left zero: both runs really trained
    assert shared_probs.shape == (15, 3)
    torch.testing.assert_close(shared_probs, reference_probs, rtol=0, atol=1e-5)
