"""The task's encoding as the data module hands it to the model: built by the encoder, a plain value."""

import pytest

from sentiment_pl.data.datamodule import TweetSentimentData
from sentiment_pl.data.encoding import ChatEncoder
from sentiment_pl.data.prompts import PromptSpec
from sentiment_pl.data.sources import LocalFiles
from sentiment_pl.data.task import TaskEncoding


def test_the_encoder_builds_the_task_and_it_round_trips(tokenizer):
    encoder = ChatEncoder(tokenizer, PromptSpec(), max_length=256)
    task = encoder.task
    assert task.class_names == PromptSpec().class_names and task.answers == encoder.answers
    assert task.prefix_ids == encoder.prefix_ids and task.pad_id == tokenizer.pad_token_id
    assert task.first_ids == tuple(a[0] for a in encoder.answers) and task.first_tokens_distinct
    assert TaskEncoding.from_dict(task.to_dict()) == task
    with pytest.raises(ValueError, match="one non-empty answer each"):
        TaskEncoding(("a", "b"), ((1, 2),), (), 0)


def test_the_data_module_gives_the_task_and_the_training_class_counts(tokenizer_dir, tweets, tmp_path):
    import json

    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": s}) + "\n"
                            for t, s in zip(tweets.texts[:20], tweets.sentiments[:20])))
    data = TweetSentimentData(LocalFiles(train=str(path), validation=str(path)), tokenizer=str(tokenizer_dir))
    data.load_tokenizer()
    assert data.task == data.encoder.task
    with pytest.raises(RuntimeError, match="set up first"):
        data.class_counts("train")
    data.setup("fit")
    counts = data.class_counts("train")
    assert counts == tuple(tweets.sentiments[:20].count(c) for c in range(3)) and sum(counts) == 20
