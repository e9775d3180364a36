"""The masked-completion loss and class scoring against reference computations."""

import pytest
import torch
import torch.nn.functional as F

from sentiment_pl.data.encoding import IGNORE_INDEX
from sentiment_pl.model.objective import (answer_sequences, completion_loss, first_token_scores, scoring_positions,
                                          sequence_log_probs, supervised_positions)


def supervised(hidden, labels):
    """The hidden states the model reads for the loss: at `supervised_positions(labels)`."""
    return hidden[supervised_positions(labels)[:2]]


def test_loss_equals_full_logit_cross_entropy():
    torch.manual_seed(0)
    batch, length, width, vocab = 3, 9, 16, 50
    hidden = torch.randn(batch, length, width)
    head = torch.nn.Linear(width, vocab, bias=False)
    labels = torch.full((batch, length), IGNORE_INDEX)
    labels[0, 5:8] = torch.tensor([4, 7, 2])
    labels[1, 6:8] = torch.tensor([9, 2])
    labels[2, 2:9] = torch.randint(0, vocab, (7,))
    # Reference: logits at every position, shifted, cross-entropy with ignore_index.
    logits = head(hidden)
    reference = F.cross_entropy(logits[:, :-1].reshape(-1, vocab), labels[:, 1:].reshape(-1),
                                ignore_index=IGNORE_INDEX)
    loss = completion_loss(supervised(hidden, labels), labels, head)
    torch.testing.assert_close(loss, reference, rtol=1e-6, atol=1e-6)
    # Gradients match too.
    g_ref = torch.autograd.grad(reference, head.weight)[0]
    g = torch.autograd.grad(completion_loss(supervised(hidden, labels), labels, head), head.weight)[0]
    torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-7)


def test_supervised_positions_shift_by_one():
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 5, 6]])
    rows, cols, targets = supervised_positions(labels)
    assert rows.tolist() == [0, 0] and cols.tolist() == [1, 2] and targets.tolist() == [5, 6]


def test_batch_without_supervised_token_is_an_error():
    with pytest.raises(ValueError, match="no supervised token"):
        completion_loss(torch.zeros(0, 4), torch.full((1, 3), IGNORE_INDEX), torch.nn.Identity())


def test_hidden_states_not_read_at_the_supervised_positions_are_refused():
    labels = torch.full((2, 5), IGNORE_INDEX)
    labels[:, 3:] = 7
    with pytest.raises(ValueError, match=r"not the \[4, width\] of supervised_positions"):
        completion_loss(torch.zeros(2, 5, 8), labels, torch.nn.Identity())  # a full [batch, T, width] tensor
    with pytest.raises(ValueError, match=r"not the \[4, width\]"):
        sequence_log_probs(torch.zeros(3, 8), labels, torch.nn.Identity())


class PreferringHead(torch.nn.Module):
    """A hand-built output layer whose logits favour chosen tokens regardless of the input."""

    def __init__(self, vocab: int, preferred: dict[int, float]):
        super().__init__()
        self.bias = torch.zeros(vocab)
        for token, value in preferred.items():
            self.bias[token] = value

    def forward(self, hidden):
        return hidden[..., :1] * 0 + self.bias


@pytest.mark.parametrize("winner", [0, 1, 2])
def test_first_token_scoring_picks_the_preferred_class(winner):
    first_ids = [11, 12, 13]
    head = PreferringHead(20, {first_ids[winner]: 5.0})
    hidden = torch.randn(4, 6, 8)
    scores = first_token_scores(hidden[scoring_positions(torch.tensor([6, 4, 5, 2]))], head, first_ids)
    assert scores.shape == (4, 3)
    assert scores.argmax(-1).tolist() == [winner] * 4
    # Log-probabilities under the full vocabulary, not renormalized over the classes.
    expected = torch.log_softmax(head.bias, -1)[first_ids]
    torch.testing.assert_close(scores, expected.expand(4, 3))


def test_first_token_scoring_reads_the_last_prompt_position():
    first_ids = [1, 2]
    head = torch.nn.Linear(2, 3, bias=False)
    head.weight.data = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    hidden = torch.zeros(1, 4, 2)
    hidden[0, 2] = torch.tensor([0.0, 9.0])  # position prompt_length - 1 prefers token 2, i.e. class 1
    hidden[0, 3] = torch.tensor([9.0, 0.0])  # an answer position must not be read
    read = scoring_positions(torch.tensor([3]))
    assert read[1].tolist() == [2]
    assert first_token_scores(hidden[read], head, first_ids).argmax(-1).item() == 1


def test_sequence_scoring_sums_answer_token_log_probs():
    prompts = torch.tensor([[5, 6, 7, 0], [5, 8, 0, 0]])
    answers = [(3, 2), (3, 4, 2)]  # first tokens collide: the whole answer decides
    ids, mask, labels = answer_sequences(prompts, torch.tensor([3, 2]), answers, pad_id=0)
    assert ids.tolist() == [[5, 6, 7, 3, 2, 0], [5, 6, 7, 3, 4, 2], [5, 8, 3, 2, 0, 0], [5, 8, 3, 4, 2, 0]]
    assert mask.sum(1).tolist() == [5, 6, 4, 5]
    torch.manual_seed(0)
    hidden = torch.randn(4, 6, 8)
    head = torch.nn.Linear(8, 10)
    scores = sequence_log_probs(supervised(hidden, labels), labels, head)
    assert scores.shape == (4,)
    log_probs = head(hidden).log_softmax(-1)
    # Row 1: answer (3, 4, 2) at positions 3, 4, 5, predicted from positions 2, 3, 4.
    expected = log_probs[1, 2, 3] + log_probs[1, 3, 4] + log_probs[1, 4, 2]
    torch.testing.assert_close(scores[1], expected)
