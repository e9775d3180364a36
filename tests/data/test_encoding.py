"""Completion masks on the real TinyLlama tokenizer and chat template."""

import pytest

from sentiment_pl.data.encoding import IGNORE_INDEX, ChatEncoder, EncodingError
from sentiment_pl.data.prompts import CLASS_NAMES, PromptSpec


@pytest.fixture(scope="module")
def encoder(tokenizer):
    return ChatEncoder(tokenizer, PromptSpec(), max_length=256)


def supervised(e):
    return [t for t, label in zip(e.input_ids, e.labels) if label != IGNORE_INDEX]


@pytest.mark.parametrize("sentiment", range(3))
def test_supervised_tokens_are_exactly_the_class_name_and_eos(encoder, tokenizer, tweets, sentiment):
    for text in tweets.texts[:50]:
        e = encoder.encode(text, sentiment)
        assert tokenizer.decode(supervised(e)) == CLASS_NAMES[sentiment] + "</s>"
        assert e.labels[: e.prompt_length] == [IGNORE_INDEX] * e.prompt_length
        assert e.labels[e.prompt_length:] == e.input_ids[e.prompt_length:]
        # The template's trailing newline after </s> is not in the sample at all.
        assert e.input_ids[-1] == tokenizer.eos_token_id


def test_prompt_is_the_chat_template_generation_prompt(encoder, tokenizer, tweets):
    text = tweets.texts[0]
    e = encoder.encode(text, 1)
    rendered = tokenizer.decode(e.input_ids)
    assert rendered == (f"<|system|>\n{PromptSpec().system_prompt}</s>\n<|user|>\n{text}</s>\n<|assistant|>\n"
                        "neutral</s>")
    assert tokenizer.decode(e.input_ids[: e.prompt_length]).endswith("<|assistant|>\n")


def test_answer_tokens_and_first_token_check(encoder, tokenizer):
    assert [tokenizer.convert_ids_to_tokens(list(a)) for a in encoder.answers] == [
        ["negative", "</s>"], ["neut", "ral", "</s>"], ["pos", "itive", "</s>"]]
    assert encoder.task.first_tokens_distinct
    colliding = ChatEncoder(tokenizer, PromptSpec(class_names=("pos", "positive", "neutral")), 256)
    assert not colliding.task.first_tokens_distinct


def test_unlabeled_tweet_gives_the_prompt_alone(encoder):
    e = encoder.encode("no label here")
    assert e.sentiment is None and len(e.input_ids) == e.prompt_length
    assert set(e.labels) == {IGNORE_INDEX}


def test_truncation_cuts_the_tweet_never_the_answer(tokenizer, tweets):
    encoder = ChatEncoder(tokenizer, PromptSpec(), max_length=72)
    long_tweets = [t for t in tweets.texts if len(tokenizer(t)["input_ids"]) > 30][:20]
    encoded, truncated = encoder.encode_all(long_tweets, [2] * len(long_tweets))
    assert truncated == len(long_tweets)
    for e in encoded:
        assert e.truncated and len(e.input_ids) <= 72
        assert tokenizer.decode(supervised(e)) == "positive</s>"


def test_short_tweets_are_not_truncated(encoder, tweets):
    _, truncated = encoder.encode_all(tweets.texts[:200], tweets.sentiments[:200])
    assert truncated == 0


def test_max_length_too_small_for_the_prompt_is_an_error(tokenizer):
    with pytest.raises(EncodingError, match="max_length=20"):
        ChatEncoder(tokenizer, PromptSpec(), max_length=20)


def test_template_without_eos_after_the_answer_is_an_error(tokenizer):
    import copy

    broken = copy.deepcopy(tokenizer)
    broken.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
                            "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
    with pytest.raises(EncodingError, match="no eos token"):
        ChatEncoder(broken, PromptSpec(), max_length=256)


def template_ids(tokenizer, chat, add_generation_prompt):
    ids = tokenizer.apply_chat_template(chat, add_generation_prompt=add_generation_prompt, tokenize=True)
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


def test_batched_encoding_is_the_chat_template_one_tweet_at_a_time(encoder, tokenizer, tweets):
    texts, labels = tweets.texts[:300], tweets.sentiments[:300]
    encoded, _ = encoder.encode_all(texts, labels, chunk=64)
    assert encoded == [encoder.encode(t, s) for t, s in zip(texts, labels)]
    for text, sentiment, e in zip(texts, labels, encoded):
        prompt = template_ids(tokenizer, encoder.prompt.messages(text), True)
        full = template_ids(tokenizer, encoder.prompt.messages(text, sentiment), False)
        assert e.input_ids[: e.prompt_length] == prompt
        assert e.input_ids == full[: len(e.input_ids)] and e.input_ids[-1] == tokenizer.eos_token_id
    unlabeled, _ = encoder.encode_all(texts[:40], None, chunk=16)
    assert unlabeled == [encoder.encode(t) for t in texts[:40]]
