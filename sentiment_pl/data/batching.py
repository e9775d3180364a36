"""Batches: dynamic padding, and the length-grouped order that keeps padding low."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Dataset, DistributedSampler
from transformers.trainer_pt_utils import get_length_grouped_indices

from sentiment_pl.data.encoding import IGNORE_INDEX, Encoded


class EncodedDataset(Dataset):
    """Encoded examples, each returned with its position so predictions can be put back in input order."""

    def __init__(self, examples: Sequence[Encoded]) -> None:
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> tuple[int, Encoded]:
        return index, self.examples[index]

    @property
    def lengths(self) -> list[int]:
        return [len(e.input_ids) for e in self.examples]


class Collator:
    """Right-pads a list of examples into tensors.

    The batch holds `input_ids`, `attention_mask`, `labels` (IGNORE_INDEX on prompt and padding),
    `prompt_lengths`, `sentiment` (-1 where unknown) and `index` (position in the dataset).
    """

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, items: list[tuple[int, Encoded]]) -> dict[str, torch.Tensor]:
        width = max(len(e.input_ids) for _, e in items)
        ids = torch.full((len(items), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(items), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for row, (_, e) in enumerate(items):
            n = len(e.input_ids)
            ids[row, :n] = torch.tensor(e.input_ids)
            labels[row, :n] = torch.tensor(e.labels)
            mask[row, :n] = 1
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": labels,
            "prompt_lengths": torch.tensor([e.prompt_length for _, e in items]),
            "sentiment": torch.tensor([-1 if e.sentiment is None else e.sentiment for _, e in items]),
            "index": torch.tensor([i for i, _ in items]),
        }


class LengthGroupedSampler(DistributedSampler):
    """Shuffled (and by default length-grouped) order for training, split across ranks.

    Each epoch shuffles the data (seeded by `seed + epoch`, so epochs differ and a resumed run sees the same order),
    cuts it into mega-batches of 50 batches, sorts each by length (transformers' grouping), and deals the result
    to the ranks in turn. A subclass of DistributedSampler, so Lightning uses it as it is on every world size.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, group: bool = True,
                 num_replicas: int | None = None, rank: int | None = None) -> None:
        if num_replicas is None:
            distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
            num_replicas = torch.distributed.get_world_size() if distributed else 1
            rank = torch.distributed.get_rank() if distributed else 0
        super().__init__(lengths, num_replicas=num_replicas, rank=rank or 0, shuffle=True, seed=seed)
        self.lengths, self.batch_size, self.group = list(lengths), batch_size, group
        self.resume_epoch, self.resume_batches = 0, 0

    def resume_at(self, epoch: int, batches: int) -> None:
        """In `epoch`, skip this rank's first `batches` batches: a resumed run continues where it stopped
        instead of repeating them. The length stays that of the whole epoch, as the training loop counts it."""
        self.resume_epoch, self.resume_batches = epoch, batches

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        if self.group:
            order = get_length_grouped_indices(self.lengths, self.batch_size * self.num_replicas, generator=generator)
        else:
            order = torch.randperm(len(self.lengths), generator=generator).tolist()
        # Pad by wrapping so every rank gets the same number of samples, as DistributedSampler does in training.
        total = math.ceil(len(order) / self.num_replicas) * self.num_replicas
        order = (order + order[: total - len(order)])[:total]
        mine = order[self.rank:total:self.num_replicas]
        if self.epoch == self.resume_epoch:
            mine = mine[self.resume_batches * self.batch_size:]
        return iter(mine)

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.num_replicas)


class OrderedShardSampler(DistributedSampler):
    """Evaluation order: each rank gets a contiguous slice of the split, with no sample repeated or dropped,
    longest first within the slice (less padding, and an out-of-memory shows on the first batch).

    Lightning's default DistributedSampler pads the last batch by repeating samples, which would count them twice
    in metrics and predictions; this one gives the last ranks one sample fewer instead.
    """

    def __init__(self, lengths: Sequence[int], num_replicas: int | None = None, rank: int | None = None) -> None:
        size = len(lengths)
        if num_replicas is None:
            distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
            num_replicas = torch.distributed.get_world_size() if distributed else 1
            rank = torch.distributed.get_rank() if distributed else 0
        super().__init__(range(size), num_replicas=num_replicas, rank=rank or 0, shuffle=False)
        self.lengths = list(lengths)
        per_rank, extra = divmod(size, num_replicas)
        self.start = self.rank * per_rank + min(self.rank, extra)
        self.stop = self.start + per_rank + (1 if self.rank < extra else 0)

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(range(self.start, self.stop), key=lambda i: -self.lengths[i]))

    def __len__(self) -> int:
        return self.stop - self.start
