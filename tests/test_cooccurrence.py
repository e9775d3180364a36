"""Co-occurrence embeddings: the pair counts, PPMI and SVD against direct computations, and that a fit (only a
fit) starts from them on exactly the tokens of its training tweets."""

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from sentiment_pl.cli import main
from sentiment_pl.cooccurrence import CooccurrenceInit, cooccurrence_counts, cooccurrence_vectors
from sentiment_pl.cooccurrence import initialize_embeddings, ppmi
from sentiment_pl.encoding import ChatEncoder
from sentiment_pl.module import SentimentClassifier
from sentiment_pl.prompts import PromptSpec
from sentiment_pl.sources import TweetEvalFolder
from training_runs import tiny_config, tweeteval_folder, write_config

SEQUENCES = [[5, 9, 5, 7, 2], [9, 9], [3], [7, 2, 5, 11, 9, 3, 3, 5]]


def test_counts_are_every_pair_within_the_window_in_both_directions():
    vocab, counts = cooccurrence_counts(SEQUENCES, window=2)
    expected = np.zeros((len(vocab), len(vocab)))
    index = {int(t): i for i, t in enumerate(vocab)}
    for seq in SEQUENCES:
        for i, j in itertools.permutations(range(len(seq)), 2):
            if abs(i - j) <= 2:
                expected[index[seq[i]], index[seq[j]]] += 1
    assert vocab.tolist() == sorted({t for s in SEQUENCES for t in s})
    np.testing.assert_array_equal(counts.to_dense().numpy(), expected)


def test_ppmi_matches_the_formula_on_a_dense_matrix():
    _, counts = cooccurrence_counts(SEQUENCES, window=3)
    c = counts.to_dense().double().numpy()
    context = c.sum(0) ** 0.75
    with np.errstate(divide="ignore"):
        pmi = np.log((c / c.sum()) / (c.sum(1, keepdims=True) / c.sum() * context / context.sum()))
    np.testing.assert_allclose(ppmi(counts, 0.75).to_dense().numpy(), np.maximum(pmi, 0), rtol=1e-5, atol=1e-6)
    assert (ppmi(counts, 0.75).values() > 0).all()  # non-positive PMI is not stored


def test_full_rank_vectors_reproduce_the_ppmi_matrix_row_geometry():
    # With every singular value kept and power 1 the vectors are U S, so their Gram matrix is M M^T whatever the
    # signs the SVD picks; narrower vectors are padded with zeros.
    vocab, counts = cooccurrence_counts(SEQUENCES, window=2)
    matrix = ppmi(counts, 0.75).to_dense()
    ids, vectors = cooccurrence_vectors(SEQUENCES, dim=len(vocab) + 3, spec=CooccurrenceInit(window=2, power=1.0))
    assert torch.equal(ids, vocab) and vectors.shape == (len(vocab), len(vocab) + 3)
    torch.testing.assert_close(vectors @ vectors.T, matrix @ matrix.T, rtol=1e-4, atol=1e-4)
    assert torch.equal(vectors[:, len(vocab):], torch.zeros(len(vocab), 3))


def test_initialization_sets_occurring_rows_at_the_tables_scale_and_leaves_the_random_stream():
    torch.manual_seed(0)
    embedding = torch.nn.Embedding(16, 4)
    before = embedding.weight.detach().clone()
    state = torch.random.get_rng_state()
    assert initialize_embeddings(embedding, SEQUENCES, CooccurrenceInit(window=2)) == 6
    assert torch.equal(torch.random.get_rng_state(), state)
    _, vectors = cooccurrence_vectors(SEQUENCES, 4, CooccurrenceInit(window=2))
    occurring = [2, 3, 5, 7, 9, 11]
    torch.testing.assert_close(embedding.weight[occurring], vectors * (before.std() / vectors.std()))
    others = [i for i in range(16) if i not in occurring]
    assert torch.equal(embedding.weight[others], before[others])


def test_similar_contexts_give_similar_vectors_on_real_tweets(tokenizer, tweeteval_dir):
    # Not a quality bar, a sign the statistics are the right ones: on 8,000 real training tweets, weekday names
    # share their contexts far more than a weekday and a function word do (0.59 against 0.35 when written).
    train = TweetEvalFolder(str(tweeteval_dir)).load("train", PromptSpec().class_names)
    sequences = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in train.texts[:8000]]
    vocab, vectors = cooccurrence_vectors(sequences, 64)
    row = {int(t): i for i, t in enumerate(vocab)}
    unit = torch.nn.functional.normalize(vectors, dim=1)
    days = [row[tokenizer.convert_tokens_to_ids(w)] for w in ("▁Monday", "▁Friday", "▁Saturday", "▁Sunday")]
    words = [row[tokenizer.convert_tokens_to_ids(w)] for w in ("▁you", "▁the", "▁and", "▁I", "▁to")]
    among_days = (unit[days] @ unit[days].T)[~torch.eye(len(days), dtype=torch.bool)].mean()
    assert among_days > (unit[days] @ unit[words].T).mean() + 0.15


@pytest.mark.parametrize("key, value, message", [("window", 0, "window=0 must be at least 1"),
                                                 ("context_smoothing", 0.0, "context_smoothing=0.0 must be in")])
def test_bad_settings_are_refused_naming_the_key(key, value, message):
    with pytest.raises(ValueError, match=rf"model\.cooccurrence_init\.{message}"):
        CooccurrenceInit(**{key: value})


def test_with_lora_it_is_refused_naming_both_keys():
    with pytest.raises(ValueError, match=r"model\.cooccurrence_init .* model\.lora: null"):
        SentimentClassifier(cooccurrence_init=CooccurrenceInit())


class EmbeddingRecorder(Callback):
    """Saves the input embedding table as the run starts, before any step."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _save(self, pl_module) -> None:
        torch.save(pl_module.model.get_input_embeddings().weight.detach().clone(), self.path)

    def on_fit_start(self, trainer, pl_module) -> None:
        self._save(pl_module)

    def on_validation_start(self, trainer, pl_module) -> None:
        if trainer.state.fn == "validate":
            self._save(pl_module)


def run_start_embeddings(tmp: Path, tokenizer_dir: Path, data: Path, command: str, init: dict | None) -> torch.Tensor:
    path = tmp / "embeddings.pt"
    model = {"base": {"quantization": "none"}, "lora": None, "share_prefix": False, "cooccurrence_init": init,
             "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 1e-3}}}
    config = tiny_config(tmp, tokenizer_dir, data, {
        "trainer": {"max_steps": 1, "callbacks": [{"class_path": "test_cooccurrence.EmbeddingRecorder",
                                                   "init_args": {"path": str(path)}}]},
        "model": model, "data": {"prompt": {"system_prompt": ""}}})
    if command == "validate":
        del config["checkpoint"], config["last_checkpoint"], config["trainer"]["max_steps"]
        config["trainer"]["limit_val_batches"] = 1
    main([command, "--config", str(write_config(tmp / "config.yaml", config))])
    return torch.load(path)


@pytest.mark.slow
def test_fit_starts_from_the_training_tweets_vectors_and_validate_does_not(tmp_path: Path, tokenizer_dir,
                                                                           tweeteval_dir, tokenizer):
    data = tweeteval_folder(tmp_path / "data", tweeteval_dir, {"train": 200, "val": 8, "test": 8})
    init = {"window": 3}
    random = run_start_embeddings(tmp_path / "random", tokenizer_dir, data, "fit", None)
    started = run_start_embeddings(tmp_path / "fit", tokenizer_dir, data, "fit", init)
    validated = run_start_embeddings(tmp_path / "validate", tokenizer_dir, data, "validate", init)
    assert torch.equal(validated, random)

    encoder = ChatEncoder(tokenizer, PromptSpec(system_prompt=""), max_length=128)
    train = TweetEvalFolder(str(data)).load("train", PromptSpec().class_names)
    head, tail = encoder.tweet_margins
    tweets = [e.input_ids[head:e.prompt_length - tail] for e in encoder.encode_all(train.texts, train.sentiments)[0]]
    ids, vectors = cooccurrence_vectors(tweets, random.shape[1], CooccurrenceInit(**init))
    torch.testing.assert_close(started[ids], vectors * (random.std() / vectors.std()))
    others = torch.ones(len(random), dtype=torch.bool)
    others[ids] = False
    assert torch.equal(started[others], random[others])  # the template's and unseen tokens stay random


class StartEndRecorder(Callback):
    """Saves every trainable weight as fit starts and as it ends, and the optimizer's group learning rates."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _weights(self, pl_module) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in pl_module.named_parameters() if p.requires_grad}

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = self._weights(pl_module)
        self.initial = [g["initial_lr"] for g in trainer.optimizers[0].param_groups]

    def on_train_end(self, trainer, pl_module) -> None:
        torch.save({"start": self.start, "end": self._weights(pl_module), "initial_lr": self.initial}, self.path)


@pytest.mark.slow
@pytest.mark.parametrize("scale", [0.0, 0.5])
def test_embedding_lr_scale_slows_the_embeddings_only(tmp_path: Path, tokenizer_dir, tweeteval_dir, scale):
    data = tweeteval_folder(tmp_path / "data", tweeteval_dir, {"train": 16, "val": 8, "test": 8})
    path = tmp_path / "weights.pt"
    config = tiny_config(tmp_path, tokenizer_dir, data, {
        "trainer": {"max_steps": 2, "callbacks": [{"class_path": "test_cooccurrence.StartEndRecorder",
                                                   "init_args": {"path": str(path)}}]},
        "model": {"base": {"quantization": "none"}, "lora": None, "embedding_lr_scale": scale,
                  "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 1e-2}},
                  "lr_schedule": "constant"}})
    main(["fit", "--config", str(write_config(tmp_path / "config.yaml", config))])
    record = torch.load(path)
    assert record["initial_lr"] == [1e-2, 1e-2 * scale]
    moved = {n: (record["end"][n] - record["start"][n]).abs().max().item() for n in record["start"]}
    embedding = next(n for n in moved if "embed_tokens" in n)
    assert all(v > 1e-3 for n, v in moved.items() if n != embedding)
    if scale == 0:
        assert moved[embedding] == 0
    else:  # each of Adam's first steps moves a weight by at most about its learning rate, whatever the gradient
        assert 0.3 * 1e-2 * scale < moved[embedding] < 2.2 * 1e-2 * scale


def test_negative_embedding_lr_scale_is_refused_naming_the_key():
    with pytest.raises(ValueError, match=r"model\.embedding_lr_scale=-1\.0 must be at least 0"):
        SentimentClassifier(embedding_lr_scale=-1.0)
