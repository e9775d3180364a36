"""Padding, length-grouped training order, and evaluation shards that cover a split exactly once."""

import torch

from sentiment_pl.data.batching import Collator, LengthGroupedSampler, OrderedShardSampler
from sentiment_pl.data.encoding import IGNORE_INDEX, Encoded


def test_collator_pads_right_and_masks_padding():
    a = Encoded([1, 2, 3, 4], [IGNORE_INDEX, IGNORE_INDEX, 4, 2], 2, 1)
    b = Encoded([5, 6], [IGNORE_INDEX, IGNORE_INDEX], 2, None)
    batch = Collator(pad_token_id=0)([(7, a), (3, b)])
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4], [5, 6, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, IGNORE_INDEX, 4, 2], [IGNORE_INDEX] * 4]
    assert batch["prompt_lengths"].tolist() == [2, 2]
    assert batch["sentiment"].tolist() == [1, -1] and batch["index"].tolist() == [7, 3]


def padding_efficiency(order, lengths, batch_size):
    real = padded = 0
    for i in range(0, len(order), batch_size):
        chunk = [lengths[j] for j in order[i:i + batch_size]]
        real, padded = real + sum(chunk), padded + max(chunk) * len(chunk)
    return real / padded


def test_length_grouping_cuts_padding_and_epochs_differ():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(60, 170, (2000,), generator=g).tolist()
    grouped = LengthGroupedSampler(lengths, batch_size=16, seed=1, num_replicas=1, rank=0)
    plain = LengthGroupedSampler(lengths, batch_size=16, seed=1, group=False, num_replicas=1, rank=0)
    first = list(grouped)
    assert sorted(first) == list(range(2000))
    assert padding_efficiency(first, lengths, 16) > 0.95 > padding_efficiency(list(plain), lengths, 16)
    grouped.set_epoch(1)
    second = list(grouped)
    assert second != first and sorted(second) == list(range(2000))
    grouped.set_epoch(0)
    assert list(grouped) == first  # the same epoch gives the same order: resumable


def test_training_ranks_split_one_order():
    lengths = list(range(100, 203))
    ranks = [list(LengthGroupedSampler(lengths, 4, seed=0, num_replicas=2, rank=r)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 52
    assert set(ranks[0]) | set(ranks[1]) == set(range(103))


def test_eval_shards_cover_every_sample_once():
    lengths = [5, 9, 1, 7, 3, 8, 2]
    shards = [list(OrderedShardSampler(lengths, num_replicas=3, rank=r)) for r in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(7))
    assert [len(s) for s in shards] == [3, 2, 2]
    assert shards[0] == [1, 0, 2]  # longest first within the shard
