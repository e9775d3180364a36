"""The masked-completion loss and class scoring, on final hidden states at the positions they read.

Only the positions that matter go through the output layer: the 2-3 answer positions per example in training,
one position per example when scoring classes. A 32,000-way logit tensor at every position is never built. Each
function takes the hidden states gathered at its positions, [N, width], in the order their positions function
gives them: `supervised_positions(labels)` for the loss and sequence scores, `scoring_positions(prompt_lengths)`
for first-token scores (`sentiment_pl.model.fast.read_hidden_states` reads exactly those).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from sentiment_pl.data.encoding import IGNORE_INDEX

Head = Callable[[torch.Tensor], torch.Tensor]


def supervised_positions(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rows, positions, target ids) of every supervised token; the one place that shifts targets.

    The hidden state at position t predicts token t + 1, so position t is supervised when label t + 1 is set.
    """
    targets = labels[:, 1:]
    rows, cols = (targets != IGNORE_INDEX).nonzero(as_tuple=True)
    return rows, cols, targets[rows, cols]


def supervised_targets(hidden: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, target ids) of the supervised tokens whose hidden states `hidden` [N, width] holds, checked."""
    rows, _, targets = supervised_positions(labels)
    if targets.numel() == 0:
        raise ValueError("batch has no supervised token; every labeled example must carry its answer")
    check_gathered(hidden, len(targets), "supervised_positions(labels)")
    return rows, targets


def check_gathered(hidden: torch.Tensor, positions: int, source: str) -> None:
    if hidden.dim() != 2 or hidden.shape[0] != positions:
        raise ValueError(f"hidden states {list(hidden.shape)} are not the [{positions}, width] of {source}")


def completion_loss(hidden: torch.Tensor, labels: torch.Tensor, head: Head) -> torch.Tensor:
    """Mean cross-entropy over the supervised tokens of the batch; `hidden` [N, width]: the hidden states at
    `supervised_positions(labels)`, the only logits computed."""
    _, targets = supervised_targets(hidden, labels)
    return F.cross_entropy(head(hidden).float(), targets)


def scoring_positions(prompt_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, positions) whose hidden states `first_token_scores` reads: each prompt's last token."""
    return torch.arange(len(prompt_lengths), device=prompt_lengths.device), prompt_lengths - 1


def first_token_scores(hidden: torch.Tensor, head: Head, first_ids: Sequence[int]) -> torch.Tensor:
    """Log-probability of each class's first answer token after the prompt: [batch, classes]; `hidden`
    [batch, width]: the hidden states at `scoring_positions(prompt_lengths)`, each prompt's last token.

    Valid as a class score when the first tokens differ; one forward pass over the prompt scores every class.
    """
    log_probs = head(hidden).float().log_softmax(-1)
    return log_probs[:, list(first_ids)]


def answer_sequences(input_ids: torch.Tensor, prompt_lengths: torch.Tensor, answers: Sequence[Sequence[int]],
                     pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every prompt followed by every class's answer: ids, attention mask and labels of [batch * classes, T].

    Row b * C + c is prompt b + answer c; its labels mark the answer tokens, as in training.
    """
    rows = [(input_ids[b, : prompt_lengths[b]].tolist(), list(a)) for b in range(len(input_ids)) for a in answers]
    width = max(len(p) + len(a) for p, a in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (p, a) in enumerate(rows):
        ids[i, : len(p) + len(a)] = torch.tensor(p + a)
        labels[i, len(p): len(p) + len(a)] = torch.tensor(a)
        mask[i, : len(p) + len(a)] = 1
    return ids.to(input_ids.device), mask.to(input_ids.device), labels.to(input_ids.device)


def sequence_log_probs(hidden: torch.Tensor, labels: torch.Tensor, head: Head) -> torch.Tensor:
    """Sum of the log-probabilities of each row's supervised tokens: [rows of `labels`]; `hidden` [N, width]:
    the hidden states at `supervised_positions(labels)`."""
    rows, targets = supervised_targets(hidden, labels)
    token_lp = head(hidden).float().log_softmax(-1).gather(1, targets[:, None]).squeeze(1)
    return torch.zeros(labels.shape[0], device=hidden.device).index_add(0, rows, token_lp)
