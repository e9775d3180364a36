"""Never-read tweet tokens: which ids training tweets hold, their exact removal from an encoded example, and the
data module dropping them from every evaluation split (`data.drop_unseen_tokens`)."""

import json

import pytest
import torch

from sentiment_pl.data import TweetSentimentData
from sentiment_pl.encoding import IGNORE_INDEX, ChatEncoder
from sentiment_pl.prompts import PromptSpec
from sentiment_pl.sources import DataError, LocalFiles
from sentiment_pl.vocabulary import drop_unread, read_tokens, tweet_span, with_tweet


@pytest.mark.parametrize("prompt", [PromptSpec(system_prompt=""), PromptSpec()])
def test_drop_removes_exactly_the_unread_tweet_tokens_and_keeps_the_answer_aligned(tokenizer, tweets, prompt):
    encoder = ChatEncoder(tokenizer, prompt, max_length=160)
    head, tail = encoder.tweet_margins
    encoded, _ = encoder.encode_all(tweets.texts[:50], tweets.sentiments[:50])
    for e in encoded:
        tweet = e.input_ids[head:e.prompt_length - tail]
        unread = set(tweet[::3])  # every third token's id, wherever it occurs in the tweet
        read = torch.ones(len(tokenizer), dtype=torch.bool)
        read[list(unread)] = False
        kept = [t for t in tweet if t not in unread]
        d = drop_unread(e, read, (head, tail))
        assert d.input_ids == e.input_ids[:head] + kept + e.input_ids[e.prompt_length - tail:]
        assert d.prompt_length == e.prompt_length - (len(tweet) - len(kept))
        answer = list(encoder.answers[e.sentiment])
        assert d.labels == [IGNORE_INDEX] * d.prompt_length + answer
        assert d.input_ids[d.prompt_length:] == answer and d.sentiment == e.sentiment
        template_tail = e.input_ids[e.prompt_length - tail:e.prompt_length]
        assert d.input_ids[d.prompt_length - tail:d.prompt_length] == template_tail
    unlabeled = encoder.encode(tweets.texts[0])
    read = torch.ones(len(tokenizer), dtype=torch.bool)
    read[unlabeled.input_ids[head]] = False
    d = drop_unread(unlabeled, read, (head, tail))
    assert d.prompt_length == len(d.input_ids) == len(d.labels) < unlabeled.prompt_length
    assert drop_unread(unlabeled, torch.ones(len(tokenizer), dtype=torch.bool), (head, tail)) is unlabeled


def test_read_tokens_are_the_ids_inside_tweets_only(tokenizer, tweets):
    encoder = ChatEncoder(tokenizer, PromptSpec(system_prompt=""), max_length=160)
    encoded, _ = encoder.encode_all(tweets.texts[:200], tweets.sentiments[:200])
    read = read_tokens(encoded, encoder.tweet_margins, len(tokenizer))
    expected = {t for e in encoded for t in e.input_ids[tweet_span(e, encoder.tweet_margins)]}
    assert set(read.nonzero().flatten().tolist()) == expected
    # The template's and the answer's tokens are outside every tweet: the end-of-turn token and the first
    # answer tokens the scores read (`neut` and `pos` are no tweet's tokens; `negative` may be one).
    assert not read[tokenizer.eos_token_id] and not read[encoder.answers[1][0]] and not read[encoder.answers[2][0]]


def write_split(path, texts: list[str]) -> str:
    path.write_text("".join(json.dumps({"text": t, "label": i % 3}) + "\n" for i, t in enumerate(texts)))
    return str(path)


@pytest.fixture
def files(tmp_path, tweets) -> dict[str, str]:
    # Train holds the first 40 validation tweets; validation and test add words no train tweet has.
    return {"train": write_split(tmp_path / "train.jsonl", tweets.texts[:40]),
            "validation": write_split(tmp_path / "val.jsonl", [t + " quokkas zyzzyva" for t in tweets.texts[:6]]),
            "test": write_split(tmp_path / "test.jsonl", tweets.texts[40:52])}


@pytest.mark.parametrize("stage, splits", [("fit", ("validation",)), ("validate", ("validation",)),
                                           ("test", ("test",)), ("predict", ("test",))])
def test_data_module_drops_never_read_tokens_from_evaluation_splits(tokenizer_dir, files, stage, splits):
    kept = TweetSentimentData(LocalFiles(**files), tokenizer=str(tokenizer_dir), max_length=160)
    kept.setup("fit")
    kept.setup("test")
    data = TweetSentimentData(LocalFiles(**files), tokenizer=str(tokenizer_dir), max_length=160,
                              drop_unseen_tokens=True)
    data.setup(stage)
    margins = data.encoder.tweet_margins
    assert data.datasets["train"].examples == kept.datasets["train"].examples  # encoded, never changed
    read = read_tokens(kept.datasets["train"].examples, margins, len(data.tokenizer))
    for split in splits:
        before, after = kept.datasets[split].examples, data.datasets[split].examples
        assert after == [drop_unread(e, read, margins) for e in before]
        assert all(read[e.input_ids[tweet_span(e, margins)]].all() for e in after)
        assert sum(len(e.input_ids) for e in after) < sum(len(e.input_ids) for e in before)
    if stage == "fit":  # validation's added words are gone, the tweets' own (all in train) stay
        for before, after in zip(kept.datasets["validation"].examples, data.datasets["validation"].examples):
            text = data.tokenizer.decode(after.input_ids[tweet_span(after, margins)])
            assert "quokkas" not in text and "zyzzyva" not in text and len(after.input_ids) < len(before.input_ids)


def test_without_the_option_evaluation_leaves_train_unencoded_and_the_tweets_whole(tokenizer_dir, files):
    data = TweetSentimentData(LocalFiles(**files), tokenizer=str(tokenizer_dir), max_length=160)
    data.setup("validate")
    assert "train" not in data.datasets
    margins = data.encoder.tweet_margins
    for e in data.datasets["validation"].examples:
        assert data.tokenizer.decode(e.input_ids[tweet_span(e, margins)]).endswith("quokkas zyzzyva")


def test_evaluating_without_a_train_split_is_refused_naming_the_option_and_the_missing_file(tokenizer_dir, files):
    data = TweetSentimentData(LocalFiles(test=files["test"]), tokenizer=str(tokenizer_dir), drop_unseen_tokens=True)
    with pytest.raises(DataError, match=r"data\.drop_unseen_tokens=true needs the train split, .*LocalFiles has no "
                                        r"file for the 'train' split; set data\.source\.init_args\.train"):
        data.setup("test")


def test_a_grown_tweet_keeps_the_answer_marked_and_dropping_the_additions_restores_the_example(tokenizer, tweets):
    encoder = ChatEncoder(tokenizer, PromptSpec(system_prompt=""), max_length=160)
    margins = encoder.tweet_margins
    encoded, _ = encoder.encode_all(tweets.texts[:20], tweets.sentiments[:20])
    read = read_tokens(encoded, margins, len(tokenizer))
    added = (~read).nonzero().flatten()[:2].tolist()
    for e in encoded:
        tweet = e.input_ids[tweet_span(e, margins)]
        grown = with_tweet(e, added[:1] + tweet + added[1:], margins)
        assert grown.input_ids == e.input_ids[:margins[0]] + added[:1] + tweet + added[1:] + \
            e.input_ids[e.prompt_length - margins[1]:]
        assert grown.prompt_length == e.prompt_length + 2
        assert grown.labels == [IGNORE_INDEX] * grown.prompt_length + list(encoder.answers[e.sentiment])
        assert drop_unread(grown, read, margins) == e
