"""Baselines of the base model without an adapter: class scoring and generation checked against unbatched,
unpadded reference computations; answer parsing."""

import pytest
import torch
import yaml
from sklearn.metrics import f1_score

from conftest import TINY_ARCHITECTURE, tiny_base_config
from sentiment_pl.commands.baselines import baselines
from sentiment_pl.commands.generation import generate_answers, parse_answer
from sentiment_pl.data.encoding import ChatEncoder
from sentiment_pl.data.prompts import CLASS_NAMES, PromptSpec
from sentiment_pl.model.base import BaseModelSpec, load_base_model


@pytest.mark.parametrize(("answer", "expected"), [
    ("negative", (0, True)), (" Positive.\n", (2, True)), ("'neutral'", (1, True)),
    ("The sentiment is neutral.", (1, False)), ("positive or negative", (2, False)),
    ("neg", (None, False)), ("nonnegative", (None, False)), ("", (None, False)),
])
def test_parse_answer(answer, expected):
    assert parse_answer(answer, CLASS_NAMES) == expected


@pytest.fixture(scope="module")
def spec(tokenizer_dir):
    return BaseModelSpec(name=str(tokenizer_dir), random_init=True, architecture=TINY_ARCHITECTURE,
                         quantization="nf4", dtype="float32")


@pytest.fixture(scope="module")
def prompts(tokenizer, tweets):
    encoder = ChatEncoder(tokenizer, PromptSpec(), 256)
    return encoder, [encoder.encode(t).input_ids for t in tweets.texts[:10]]


def greedy_reference(model, prompt, steps):
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(steps):
            ids.append(int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(prompt):]


def test_batched_left_padded_generation_equals_unpadded_greedy_decoding(spec, prompts, tokenizer):
    model = load_base_model(spec).eval()
    _, ids = prompts
    answers = generate_answers(model, ids, tokenizer, batch_size=4, max_new_tokens=3)
    for prompt, answer in zip(ids, answers):
        assert answer == tokenizer.decode(greedy_reference(model, prompt, 3), skip_special_tokens=True)


@pytest.mark.slow
def test_baselines_command_scores_the_base_model(spec, prompts, tweeteval_dir, tokenizer_dir, tweets, tmp_path,
                                                 capsys):
    config = {"model": {"base": tiny_base_config(tokenizer_dir)},
              "data": {"source": {"class_path": "sentiment_pl.data.sources.TweetEvalFolder",
                                  "init_args": {"path": str(tweeteval_dir)}}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    results = baselines(str(tmp_path / "config.yaml"), split="validation", limit=10, max_new_tokens=3,
                        batch_size=4, accelerator="cpu")
    # Zero-shot class scoring: the class whose first answer token the base model's full logits prefer.
    model = load_base_model(spec).eval()
    encoder, ids = prompts
    first = [a[0] for a in encoder.answers]
    with torch.no_grad():
        preds = [int(model(input_ids=torch.tensor([p])).logits[0, -1, first].argmax()) for p in ids]
    truth = tweets.sentiments[:10]
    zero_shot = results["class scoring (zero-shot)"]
    assert zero_shot["macro_f1"] == pytest.approx(f1_score(truth, preds, average="macro", labels=[0, 1, 2],
                                                           zero_division=0), abs=1e-6)
    generated = results["greedy generation + parsing"]
    answers = [tokenizer_decode for tokenizer_decode in
               (encoder.tokenizer.decode(greedy_reference(model, p, 3), skip_special_tokens=True) for p in ids)]
    parsed = [parse_answer(a, CLASS_NAMES) for a in answers]
    assert generated["not_exactly_a_class"] == pytest.approx(sum(not e for _, e in parsed) / 10)
    gen_preds = [3 if c is None else c for c, _ in parsed]
    assert generated["macro_f1"] == pytest.approx(f1_score(truth, gen_preds, average="macro", labels=[0, 1, 2],
                                                           zero_division=0), abs=1e-6)
    assert "always neutral" in results and "uniform random (expected)" in results
    out = capsys.readouterr().out
    assert "class scoring (zero-shot)" in out and "answers not exactly one class name" in out


def test_generation_runs_in_eval_mode_and_gives_the_mode_back(spec, prompts, tokenizer):
    model = load_base_model(spec)
    _, ids = prompts
    reference = generate_answers(model.eval(), ids, tokenizer, batch_size=4, max_new_tokens=3)
    for layer in model.model.layers:
        layer.self_attn.attention_dropout = 0.5  # would change the answers if generation ran in training mode
    model.train()
    assert generate_answers(model, ids, tokenizer, batch_size=4, max_new_tokens=3) == reference
    assert model.training
