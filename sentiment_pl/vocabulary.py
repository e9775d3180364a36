"""The tweet tokens a model read in training, and the removal of the others from what it evaluates.

A model trained from scratch learns an input embedding only for the tokens that occur in its training tweets.
The rest keep whatever training left in their rows: with a tied output layer, they are trained only as wrong
answer candidates, which pushes them all one way. Test tweets from another period and collection hold many such
tokens (TweetEval sentiment: 3.15 % of test's tokens, in 30.4 % of its tweets, against 0.18 % of validation's),
so at evaluation they can be left out, as a word-level model drops out-of-vocabulary words. A pretrained model
knows those tokens and should keep them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from sentiment_pl.encoding import IGNORE_INDEX, Encoded


def tweet_span(example: Encoded, margins: tuple[int, int]) -> slice:
    """Where the tweet sits in `example.input_ids`: between the template's `margins = (head, tail)` tokens
    around it (`ChatEncoder.tweet_margins`), before the answer."""
    head, tail = margins
    return slice(head, example.prompt_length - tail)


def read_tokens(examples: Sequence[Encoded], margins: tuple[int, int], vocab_size: int) -> torch.Tensor:
    """A [vocab_size] boolean table: True for every token id that occurs in some example's tweet."""
    read = torch.zeros(vocab_size, dtype=torch.bool)
    ids = [i for e in examples for i in e.input_ids[tweet_span(e, margins)]]
    read[torch.tensor(ids, dtype=torch.long)] = True
    return read


def with_tweet(example: Encoded, tweet: list[int], margins: tuple[int, int]) -> Encoded:
    """The example with `tweet` in place of its tweet's tokens; the template and the answer are kept, and the
    labels still mark exactly the answer."""
    span = tweet_span(example, margins)
    prompt_length = example.prompt_length + len(tweet) - (span.stop - span.start)
    return replace(example, input_ids=example.input_ids[:span.start] + tweet + example.input_ids[span.stop:],
                   labels=[IGNORE_INDEX] * prompt_length + example.labels[example.prompt_length:],
                   prompt_length=prompt_length)


def drop_unread(example: Encoded, read: torch.Tensor, margins: tuple[int, int]) -> Encoded:
    """The example without the tweet tokens that `read` marks False (the example itself when none are)."""
    tweet = example.input_ids[tweet_span(example, margins)]
    kept = [i for i in tweet if read[i]]
    return example if len(kept) == len(tweet) else with_tweet(example, kept, margins)
