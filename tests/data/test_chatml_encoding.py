"""Completion masks on a second real chat template: SmolLM2-135M-Instruct's ChatML, with its real tokenizer."""

import pytest

from sentiment_pl.data.encoding import IGNORE_INDEX, ChatEncoder
from sentiment_pl.data.prompts import CLASS_NAMES, PromptSpec


@pytest.fixture(scope="module")
def encoder(smollm2_tokenizer):
    return ChatEncoder(smollm2_tokenizer, PromptSpec(), max_length=256)


@pytest.mark.parametrize("sentiment", range(3))
def test_supervised_tokens_are_exactly_the_class_name_and_im_end(encoder, smollm2_tokenizer, tweets, sentiment):
    for text in tweets.texts[:50]:
        e = encoder.encode(text, sentiment)
        supervised = [t for t, label in zip(e.input_ids, e.labels) if label != IGNORE_INDEX]
        assert smollm2_tokenizer.decode(supervised) == CLASS_NAMES[sentiment] + "<|im_end|>"
        assert e.labels[: e.prompt_length] == [IGNORE_INDEX] * e.prompt_length
        # The template's "\n" after <|im_end|> is neither supervised nor in the sample.
        assert e.input_ids[-1] == smollm2_tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_prompt_is_a_token_prefix_of_the_rendered_conversation(encoder, smollm2_tokenizer, tweets):
    text = tweets.texts[3]
    e = encoder.encode(text, 2)
    full = smollm2_tokenizer.apply_chat_template(PromptSpec().messages(text, 2), tokenize=False)
    assert full == (f"<|im_start|>system\n{PromptSpec().system_prompt}<|im_end|>\n<|im_start|>user\n{text}"
                    "<|im_end|>\n<|im_start|>assistant\npositive<|im_end|>\n")
    full_ids = smollm2_tokenizer(full, add_special_tokens=False)["input_ids"]
    assert full_ids[: len(e.input_ids)] == e.input_ids and len(full_ids) == len(e.input_ids) + 1
    assert smollm2_tokenizer.decode(full_ids[len(e.input_ids):]) == "\n"
    assert smollm2_tokenizer.decode(e.input_ids[: e.prompt_length]).endswith("<|im_start|>assistant\n")


def test_each_class_is_one_token_and_the_first_tokens_differ(encoder, smollm2_tokenizer):
    assert [smollm2_tokenizer.convert_ids_to_tokens(list(a)) for a in encoder.answers] == [
        ["negative", "<|im_end|>"], ["neutral", "<|im_end|>"], ["positive", "<|im_end|>"]]
    assert encoder.task.first_tokens_distinct


def test_shared_prefix_is_the_whole_system_turn(encoder, smollm2_tokenizer, tweets):
    prefix = smollm2_tokenizer.decode(encoder.prefix_ids)
    assert prefix == f"<|im_start|>system\n{PromptSpec().system_prompt}<|im_end|>\n"
    for text in tweets.texts[:50]:
        assert encoder.encode(text, 0).input_ids[: len(encoder.prefix_ids)] == list(encoder.prefix_ids)


def test_without_a_system_prompt_the_template_inserts_its_own_and_nothing_is_shared(smollm2_tokenizer):
    # Only a configured system turn is shared; ChatML then writes SmolLM's default one into every prompt.
    encoder = ChatEncoder(smollm2_tokenizer, PromptSpec(system_prompt=""), max_length=256)
    assert encoder.prefix_ids == ()
    e = encoder.encode("just a tweet", 1)
    assert smollm2_tokenizer.decode(e.input_ids).startswith(
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n")
