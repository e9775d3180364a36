"""Token vectors from the training tweets' own co-occurrence statistics, to start a from-scratch embedding table.

A model trained from scratch on 45k labelled tweets learns each token's embedding from the labels alone, so a
token seen a few times gets a vector fitted to those few labels. The tweets' text says more than their labels:
tokens used in the same contexts mean similar things. The positive pointwise mutual information (PPMI) of
token pairs within a small window, factored by a truncated SVD, is the count-based counterpart of word2vec
(Levy, Goldberg and Dagan, 2015) and costs seconds, not an epoch of language-model pretraining.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class CooccurrenceInit:
    """Start the token embeddings from the training tweets' co-occurrence statistics (PPMI + truncated SVD)
    instead of random values, for a model trained from scratch. Tokens that never occur in a training tweet
    keep their random vectors; the table's overall scale stays that of the random initialisation.

    Args:
        window: Tokens on each side of a token that count as its context.
        context_smoothing: Exponent on the context counts in PMI's denominator (0.75 as word2vec's negative
            sampling), which keeps rare contexts from getting inflated PMI.
        power: Singular values are raised to this power when scaling the vectors (0.5: symmetric split).
        seed: Seed of the randomized SVD.
    """

    window: int = 5
    context_smoothing: float = 0.75
    power: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"model.cooccurrence_init.window={self.window} must be at least 1")
        if not 0 < self.context_smoothing <= 1:
            raise ValueError(f"model.cooccurrence_init.context_smoothing={self.context_smoothing} must be in (0, 1]")


def cooccurrence_counts(sequences: Sequence[Sequence[int]], window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric counts of token pairs at most `window` apart within a sequence, over the tokens that occur.

    Returns the occurring token ids (sorted) and a coalesced sparse [n, n] count matrix indexed like them.
    """
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), -1, dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, :len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    vocab, local = torch.unique(ids[ids >= 0], return_inverse=True)
    dense = torch.full_like(ids, -1)
    dense[ids >= 0] = local
    pairs = []
    for offset in range(1, min(window, width - 1) + 1):
        left, right = dense[:, :-offset], dense[:, offset:]
        both = (left >= 0) & (right >= 0)
        pairs.append(torch.stack([left[both], right[both]]))
    pairs = torch.cat(pairs, dim=1)
    pairs = torch.cat([pairs, pairs.flip(0)], dim=1)  # a context counts in both directions
    counts = torch.sparse_coo_tensor(pairs, torch.ones(pairs.shape[1]), (len(vocab), len(vocab)),
                                     check_invariants=False)
    return vocab, counts.coalesce()


def ppmi(counts: torch.Tensor, context_smoothing: float) -> torch.Tensor:
    """Positive PMI of a coalesced sparse count matrix, with smoothed context probabilities; zero entries stay
    zero (PMI of an unseen pair is minus infinity, clipped to 0)."""
    (rows, cols), values = counts.indices(), counts.values()
    row_sums = torch.zeros(counts.shape[0]).index_add_(0, rows, values)
    col_sums = torch.zeros(counts.shape[1]).index_add_(0, cols, values) ** context_smoothing
    context_probability = col_sums[cols] / col_sums.sum()
    pmi = torch.log(values) - torch.log(row_sums[rows]) - torch.log(context_probability)
    keep = pmi > 0
    positive = torch.sparse_coo_tensor(counts.indices()[:, keep], pmi[keep], counts.shape, check_invariants=False)
    return positive.coalesce()


def cooccurrence_vectors(sequences: Sequence[Sequence[int]], dim: int,
                         spec: CooccurrenceInit = CooccurrenceInit()) -> tuple[torch.Tensor, torch.Tensor]:
    """The occurring token ids and their `dim`-wide vectors from the PPMI matrix's truncated SVD."""
    vocab, counts = cooccurrence_counts(sequences, spec.window)
    matrix = ppmi(counts, spec.context_smoothing)
    rank = min(dim, len(vocab))
    with torch.random.fork_rng(devices=[]):  # the randomized SVD must not move the training's random stream
        torch.manual_seed(spec.seed)
        u, s, _ = torch.svd_lowrank(matrix, q=rank, niter=4)
    vectors = torch.zeros(len(vocab), dim)
    vectors[:, :rank] = u * s ** spec.power
    return vocab, vectors


def initialize_embeddings(embedding: torch.nn.Embedding, sequences: Sequence[Sequence[int]],
                          spec: CooccurrenceInit = CooccurrenceInit()) -> int:
    """Overwrite the rows of the tokens that occur in `sequences` with their co-occurrence vectors, scaled to
    the table's current standard deviation (its random initialisation). Returns how many rows were set."""
    weight = embedding.weight
    vocab, vectors = cooccurrence_vectors(sequences, weight.shape[1], spec)
    vectors = vectors * (weight.detach().float().std() / vectors.std())
    with torch.no_grad():
        weight[vocab.to(weight.device)] = vectors.to(weight.device, weight.dtype)
    return len(vocab)
