"""The datamodule's training loader: length-grouped by default, on real tweets, with epochs that differ."""

import json

import pytest

from sentiment_pl.data.datamodule import TweetSentimentData
from sentiment_pl.data.sources import LocalFiles


def padding_efficiency(loader) -> float:
    """Real tokens / padded tokens over every batch: what `train/padding_efficiency` logs per batch."""
    real = padded = 0
    for batch in loader:
        mask = batch["attention_mask"]
        real, padded = real + int(mask.sum()), padded + mask.numel()
    return real / padded


@pytest.fixture(scope="module")
def files(tweets, tmp_path_factory):
    path = tmp_path_factory.mktemp("order") / "tweets.jsonl"
    with open(path, "w") as f:
        for text, label in zip(tweets.texts[:144], tweets.sentiments[:144]):
            f.write(json.dumps({"text": text, "label": label}) + "\n")
    return {"train": str(path), "validation": str(path)}


def make_data(files, tokenizer_dir, **kwargs) -> TweetSentimentData:
    data = TweetSentimentData(source=LocalFiles(**files), tokenizer=str(tokenizer_dir), batch_size=12, **kwargs)
    data.setup("fit")
    return data


@pytest.fixture(scope="module")
def grouped(files, tokenizer_dir) -> TweetSentimentData:
    return make_data(files, tokenizer_dir)  # the defaults


def test_training_batches_are_length_grouped_by_default(grouped, files, tokenizer_dir):
    plain = make_data(files, tokenizer_dir, group_by_length=False)
    assert grouped.group_by_length
    efficiency, unsorted = padding_efficiency(grouped.train_dataloader()), padding_efficiency(plain.train_dataloader())
    # Real tweets have a long tail, so a few batches keep some padding even when grouped.
    assert efficiency > 0.9 and efficiency > unsorted + 0.05, (efficiency, unsorted)


def test_grouped_epochs_differ_and_cover_every_tweet(grouped):
    loader = grouped.train_dataloader()
    epochs = []
    for epoch in (0, 1):
        loader.sampler.set_epoch(epoch)  # what Lightning's fit loop does at each epoch start
        epochs.append([i for batch in loader for i in batch["index"].tolist()])
    assert sorted(epochs[0]) == sorted(epochs[1]) == list(range(144))
    assert epochs[0] != epochs[1]
