"""`inspect`: the token table marks exactly the answer tokens as carrying loss, and the statistics are right."""

import json
import re

import yaml

from sentiment_pl.commands.inspection import inspect
from sentiment_pl.data.encoding import ChatEncoder
from sentiment_pl.data.prompts import CLASS_NAMES, PromptSpec


def test_inspect_prints_the_mask_and_statistics(tmp_path, tweets, tokenizer, tokenizer_dir, capsys):
    texts = tweets.texts[:6] + ["word " * 400]  # the last one cannot fit max_length=96
    labels = tweets.sentiments[:6] + [2]
    with open(tmp_path / "train.jsonl", "w") as f:
        for text, label in zip(texts, labels):
            f.write(json.dumps({"text": text, "label": label}) + "\n")
    config = {"model": {"base": {"name": str(tokenizer_dir), "random_init": True}},
              "data": {"max_length": 96, "source": {"class_path": "sentiment_pl.data.sources.LocalFiles",
                                                    "init_args": {"train": str(tmp_path / "train.jsonl"),
                                                                  "validation": str(tmp_path / "train.jsonl")}}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    inspect(str(tmp_path / "config.yaml"), split="train", examples=2, first=1)
    out = capsys.readouterr().out
    encoder = ChatEncoder(tokenizer, PromptSpec(), 96)
    for index in (1, 2):
        expected = encoder.encode(texts[index], labels[index])
        block = out.split(f"train[{index}]:")[1].split("loss-carrying text")[0]
        rows = [line.split() for line in block.splitlines()[2:] if line.strip()]
        assert [int(r[1]) for r in rows] == expected.input_ids
        carrying = [int(r[0]) for r in rows if r[-1] == "LOSS"]
        assert carrying == list(range(expected.prompt_length, len(expected.input_ids)))
        assert f"train[{index}]: {CLASS_NAMES[labels[index]]}, {len(expected.input_ids)} tokens" in out
    assert "train[0]:" not in out and "train[3]:" not in out
    assert "loss-carrying text: 'neutral</s>'" in out or "loss-carrying text: 'negative</s>'" in out \
        or "loss-carrying text: 'positive</s>'" in out
    encoded = [encoder.encode(t, s) for t, s in zip(texts, labels)]
    assert encoded[-1].truncated
    assert f"train: 7 examples; {sum(e.truncated for e in encoded)} tweets truncated to fit max_length=96" in out
    lengths = [len(e.input_ids) for e in encoded]
    assert re.search(rf"tokens per sample: +mean {sum(lengths) / 7:.1f}, .* max {max(lengths)}\n", out)
    assert "0 examples with none" in out
    counts = [labels.count(c) for c in range(3)]
    assert f"negative {counts[0]} ({counts[0] / 7:.1%})" in out
