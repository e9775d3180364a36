"""Token dropout: the tweet's span in every prompt, what the dropout replaces there, and that a real fit drops
tweet tokens in training steps only."""

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from sentiment_pl.batching import Collator
from sentiment_pl.cli import main
from sentiment_pl.data import TweetSentimentData
from sentiment_pl.dropout import drop_tweet_tokens
from sentiment_pl.encoding import ChatEncoder
from sentiment_pl.module import SentimentClassifier
from sentiment_pl.prompts import PromptSpec
from training_runs import tiny_config, tweeteval_folder, write_config


@pytest.mark.parametrize("system_prompt, head", [("", "<|user|>\n"), (None, None)])
def test_margins_cut_out_exactly_the_tweet(tokenizer, tweets, system_prompt, head):
    prompt = PromptSpec() if system_prompt is None else PromptSpec(system_prompt=system_prompt)
    encoder = ChatEncoder(tokenizer, prompt, max_length=160)
    first, last = encoder.tweet_margins
    encoded, truncated = encoder.encode_all(tweets.texts, tweets.sentiments)
    assert truncated == 0
    for text, e in zip(tweets.texts, encoded):
        # The decoder drops the space that opens the first token; every other character comes back.
        assert tokenizer.decode(e.input_ids[first:e.prompt_length - last]) == text.removeprefix(" ")
        assert tokenizer.decode(e.input_ids[e.prompt_length - last:e.prompt_length]) == "</s>\n<|assistant|>\n"
    if head is not None:
        assert tokenizer.decode(encoded[0].input_ids[:first]) == head
    else:  # the system turn comes before the tweet's turn
        assert first > len(encoder.prefix_ids) > 0


def batch_of(tokenizer, texts: list[str]) -> tuple[dict, ChatEncoder]:
    encoder = ChatEncoder(tokenizer, PromptSpec(system_prompt=""), max_length=160)
    return Collator(tokenizer.eos_token_id)(list(enumerate(encoder.encode(t, 1) for t in texts))), encoder


def tweet_positions(batch: dict, margins: tuple[int, int]) -> torch.Tensor:
    width = batch["input_ids"].shape[1]
    return torch.stack([torch.arange(width).ge(margins[0]) & torch.arange(width).lt(n - margins[1])
                        for n in batch["prompt_lengths"].tolist()])


def test_dropout_replaces_tweet_tokens_only_at_its_rate(tokenizer, tweets):
    batch, encoder = batch_of(tokenizer, tweets.texts[:400])
    ids, inside = batch["input_ids"], tweet_positions(batch, encoder.tweet_margins)
    torch.manual_seed(0)
    dropped = drop_tweet_tokens(ids, batch["prompt_lengths"], encoder.tweet_margins, 0.3, unk_id=0)
    assert torch.equal(dropped[~inside], ids[~inside])  # template, answer and padding untouched
    replaced = dropped[inside] != ids[inside]
    assert (dropped[inside][replaced] == 0).all()
    assert 0.28 < replaced.float().mean().item() < 0.32
    assert torch.equal(batch["input_ids"], ids)  # a copy: the batch itself is unchanged
    assert torch.equal(drop_tweet_tokens(ids, batch["prompt_lengths"], encoder.tweet_margins, 0.0, 0), ids)


@pytest.mark.parametrize("p", [-0.1, 1.0])
def test_out_of_range_rate_is_refused_naming_the_key(p):
    with pytest.raises(ValueError, match=rf"model\.token_dropout={p} must be in \[0, 1\)"):
        SentimentClassifier(token_dropout=p)


def test_a_tokenizer_without_unk_token_is_refused_naming_both(tokenizer_dir):
    data = TweetSentimentData(tokenizer=str(tokenizer_dir))
    data.load_tokenizer()
    data.tokenizer.unk_token = None
    module = SentimentClassifier(token_dropout=0.2)
    module.trainer = SimpleNamespace(datamodule=data)
    with pytest.raises(ValueError, match=rf"model\.token_dropout=0\.2 needs an unknown token .* the tokenizer "
                                         rf"{re.escape(repr(str(tokenizer_dir)))} has no unk_token"):
        module.setup("fit")


class InputRecorder(Callback):
    """Writes, for every forward pass, whether the module was training and the ids its embedding saw."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_fit_start(self, trainer, pl_module) -> None:
        def record(module, args):
            with open(self.path, "a") as f:
                f.write(json.dumps({"training": pl_module.training, "ids": args[0].tolist()}) + "\n")

        pl_module.model.get_input_embeddings().register_forward_pre_hook(record)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps({"batch": batch["input_ids"].tolist(),
                                "prompt_lengths": batch["prompt_lengths"].tolist()}) + "\n")


@pytest.mark.slow
def test_fit_drops_tweet_tokens_in_training_and_never_in_validation(tmp_path: Path, tokenizer_dir, tweeteval_dir,
                                                                     tokenizer):
    data = tweeteval_folder(tmp_path / "data", tweeteval_dir, {"train": 64, "val": 16, "test": 8})
    log = tmp_path / "inputs.jsonl"
    config = tiny_config(tmp_path, tokenizer_dir, data, {
        "trainer": {"max_steps": 4, "limit_val_batches": 2, "val_check_interval": 2,
                    "callbacks": [{"class_path": "test_token_dropout.InputRecorder", "init_args": {"path": str(log)}}]},
        # Unshared, so the embedding sees the batch's rows as they are (the shared prefix packs them).
        "model": {"token_dropout": 0.5, "share_prefix": False}})
    main(["fit", "--config", str(write_config(tmp_path / "config.yaml", config))])
    records = [json.loads(line) for line in log.read_text().splitlines()]
    margins = ChatEncoder(tokenizer, PromptSpec(), 128).tweet_margins
    trained = [(b, r) for b, r in zip(records, records[1:]) if "batch" in b and r.get("training")]
    assert len(trained) == 4
    for given, seen in trained:
        ids, got = torch.tensor(given["batch"]), torch.tensor(seen["ids"])
        inside = tweet_positions({"input_ids": ids, "prompt_lengths": torch.tensor(given["prompt_lengths"])}, margins)
        assert torch.equal(got[~inside], ids[~inside])
        changed = got[inside] != ids[inside]
        assert (got[inside][changed] == tokenizer.unk_token_id).all() and 0.3 < changed.float().mean() < 0.7
    evaluated = [torch.tensor(r["ids"]) for r in records if r.get("training") is False]
    assert evaluated and not any((ids == tokenizer.unk_token_id).any() for ids in evaluated)
