"""The shared system-turn prefix, as the encoder finds it: the system turn's tokens, opening every encoded example,
and an error when a chat template renders the system turn differently for some tweet."""

import copy

import pytest

from sentiment_pl.data.encoding import IGNORE_INDEX, ChatEncoder, EncodingError
from sentiment_pl.data.prompts import PromptSpec
from sentiment_pl.data.system_turn import common_prefix


@pytest.fixture(scope="module")
def encoder(tokenizer):
    return ChatEncoder(tokenizer, PromptSpec(), max_length=256)


def test_common_prefix():
    assert common_prefix([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == (1, 2)
    assert common_prefix([[1, 2], [1, 2, 3]]) == (1, 2)
    assert common_prefix([[7], [1, 2]]) == ()


def test_prefix_is_the_system_turn_and_opens_every_example(encoder, tokenizer, tweets):
    prefix = list(encoder.prefix_ids)
    assert tokenizer.decode(prefix) == f"<|system|>\n{PromptSpec().system_prompt}</s>\n"
    assert len(prefix) == 43
    for text, sentiment in zip(tweets.texts[:300], tweets.sentiments[:300]):
        e = encoder.encode(text, sentiment)
        assert e.input_ids[: len(prefix)] == prefix
        # The first supervised target comes after the prefix and the user turn: the loss never needs a logit
        # at a prefix position.
        assert e.prompt_length > len(prefix) + 1
        assert set(e.labels[: e.prompt_length]) == {IGNORE_INDEX}


def test_no_system_turn_no_prefix(tokenizer):
    assert ChatEncoder(tokenizer, PromptSpec(system_prompt=""), max_length=256).prefix_ids == ()


def test_a_system_turn_that_changes_with_the_tweet_is_an_error(tokenizer):
    shouting = copy.deepcopy(tokenizer)
    # Renders the system turn in capitals when the tweet contains SHOUT: no probe tweet triggers it.
    shouting.chat_template = tokenizer.chat_template.replace(
        "{{ '<|system|>\n' + message['content'] + eos_token }}",
        "{{ '<|system|>\n' + (message['content'].upper() if 'SHOUT' in messages[-1]['content'] else "
        "message['content']) + eos_token }}")
    encoder = ChatEncoder(shouting, PromptSpec(), max_length=256)
    assert len(encoder.prefix_ids) == 43
    encoder.encode("calm tweet", 1)
    with pytest.raises(EncodingError, match="does not start with the system turn"):
        encoder.encode("SHOUT tweet", 1)
