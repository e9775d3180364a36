"""The LightningDataModule: tweets from a source, encoded as chats with completion masks, batched."""

from __future__ import annotations

import logging

import lightning.pytorch as pl
import torch
from jsonargparse import lazy_instance
from torch.utils.data import DataLoader

from sentiment_pl.data.batching import Collator, EncodedDataset, LengthGroupedSampler, OrderedShardSampler
from sentiment_pl.data.encoding import ChatEncoder
from sentiment_pl.data.prompts import PromptSpec
from sentiment_pl.data.sources import HubTweetEval, Split, TweetSource, TweetSplit
from sentiment_pl.data.task import TaskEncoding
from sentiment_pl.errors import InputError
from sentiment_pl.locate import DEFAULT_MODEL, load_tokenizer

log = logging.getLogger(__name__)

STAGE_SPLITS: dict[str, tuple[Split, ...]] = {
    "fit": ("train", "validation"), "validate": ("validation",), "test": ("test",),
}


class TweetSentimentData(pl.LightningDataModule):
    """Tweets as chat conversations for a causal LM, with the loss on the answer only.

    Args:
        source: Where the tweets come from: `HubTweetEval` (default), `TweetEvalFolder` or `LocalFiles`.
        tokenizer: Tokenizer name or path; its chat template formats the conversations. The CLI links it to
            `model.base.name` unless set.
        prompt: The system prompt and the class names (the assistant's answers).
        max_length: Longest sample in tokens; longer tweets are truncated (never the answer) and counted.
        batch_size: Training samples per device per step.
        eval_batch_size: Samples per device in validate/test/predict; defaults to `batch_size`.
        group_by_length: Batch tweets of similar length together in training (shuffled groups) to cut padding.
        num_workers: DataLoader worker processes.
        seed: Seed of the training order; epoch e uses seed + e.
        predict_split: The split that `predict` scores.
    """

    def __init__(self, source: TweetSource = lazy_instance(HubTweetEval), tokenizer: str = DEFAULT_MODEL,
                 prompt: PromptSpec = PromptSpec(), max_length: int = 256, batch_size: int = 16,
                 eval_batch_size: int | None = None, group_by_length: bool = True, num_workers: int = 0,
                 seed: int = 0, predict_split: Split = "test") -> None:
        super().__init__()
        if max_length < 8 or batch_size < 1:
            raise InputError(f"data.max_length={max_length} and data.batch_size={batch_size} must be positive "
                             "(>= 8, >= 1)")
        self.source, self.tokenizer_name, self.prompt = source, tokenizer, prompt
        self.max_length, self.batch_size = max_length, batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.group_by_length, self.num_workers, self.seed = group_by_length, num_workers, seed
        self.predict_split: Split = predict_split
        self.tokenizer = None
        self.encoder: ChatEncoder | None = None
        # What the model reads of the encoding (set with the encoder, by load_tokenizer).
        self.task: TaskEncoding | None = None
        self.raw: dict[Split, TweetSplit] = {}
        self.datasets: dict[Split, EncodedDataset] = {}
        self.truncated: dict[Split, int] = {}

    def prepare_data(self) -> None:
        # Runs on one process per node: the place for downloads, so ranks do not race on the hub cache.
        if isinstance(self.source, HubTweetEval):
            for split in ("train", "validation", "test"):
                self.source.load(split, self.prompt.class_names)

    def setup(self, stage: str) -> None:
        self.load_tokenizer()
        for split in STAGE_SPLITS.get(stage, (self.predict_split,)):
            if split in self.datasets:
                continue
            raw = self.source.load(split, self.prompt.class_names)
            encoded, truncated = self.encoder.encode_all(raw.texts, raw.sentiments, desc=f"encoding {split}")
            self.raw[split], self.datasets[split], self.truncated[split] = raw, EncodedDataset(encoded), truncated
            lengths = self.datasets[split].lengths
            log.info("%s: %d tweets from %s, %d truncated to max_length=%d, tokens per sample mean %.1f max %d",
                     split, len(raw), raw.origin, truncated, self.max_length, sum(lengths) / len(lengths),
                     max(lengths))

    def load_tokenizer(self) -> None:
        """Load the tokenizer and build the encoder (once)."""
        if self.encoder is not None:
            return
        self.tokenizer = load_tokenizer(self.tokenizer_name, key="data.tokenizer (linked to model.base.name)")
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token  # padding is masked out; any id will do
        self.encoder = ChatEncoder(self.tokenizer, self.prompt, self.max_length)
        self.task = self.encoder.task

    def class_counts(self, split: Split) -> tuple[int, ...] | None:
        """Examples of each class in a split set up by `setup`; None when the split is unlabeled."""
        if split not in self.raw:
            raise RuntimeError(f"class_counts({split!r}) needs the split set up first")
        sentiments = self.raw[split].sentiments
        if sentiments is None:
            return None
        counts = [0] * len(self.prompt.class_names)
        for s in sentiments:
            counts[s] += 1
        return tuple(counts)

    def train_dataloader(self) -> DataLoader:
        dataset = self.datasets["train"]
        sampler = LengthGroupedSampler(dataset.lengths, self.batch_size, seed=self.seed, group=self.group_by_length)
        sampler.resume_at(*batches_done_in_epoch(self.trainer))  # after a resume, the rest of the epoch
        return self._loader(dataset, sampler, self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("validation")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader(self.predict_split)

    def _eval_loader(self, split: Split) -> DataLoader:
        dataset = self.datasets[split]
        return self._loader(dataset, OrderedShardSampler(dataset.lengths), self.eval_batch_size)

    def _loader(self, dataset: EncodedDataset, sampler, batch_size: int) -> DataLoader:
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=self.num_workers,
                          collate_fn=Collator(self.task.pad_id),
                          persistent_workers=self.num_workers > 0,
                          # Worker seeds from a generator of their own: creating a loader then leaves the global
                          # random stream (dropout) alone, so a resumed run draws what an uninterrupted one does.
                          generator=torch.Generator().manual_seed(self.seed))


def batches_done_in_epoch(trainer: pl.Trainer | None) -> tuple[int, int]:
    """(epoch, training batches already processed in it) as restored from a checkpoint; (0, 0) on a fresh run.

    `processed` counts a batch once its optimizer step ran, also when the checkpoint was written inside the
    batch-end hooks or by an interruption during the next batch.
    """
    if trainer is None:
        return 0, 0
    loop = trainer.fit_loop.epoch_loop
    return trainer.current_epoch, loop.batch_progress.current.processed
