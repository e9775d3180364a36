"""Class-weighted training loss: equal to a weighted full-logit reference, `balanced` weights, and the module
using them in its training step."""

import pytest
import torch
import torch.nn.functional as F

from conftest import TINY_ARCHITECTURE
from sentiment_pl.data.batching import Collator
from sentiment_pl.data.encoding import IGNORE_INDEX, ChatEncoder
from sentiment_pl.data.prompts import PromptSpec
from sentiment_pl.model.base import BaseModelSpec
from sentiment_pl.model.class_weights import resolve_class_weights, weighted_completion_loss
from sentiment_pl.model.objective import completion_loss, supervised_positions
from sentiment_pl.training.module import SentimentClassifier


def random_case():
    torch.manual_seed(0)
    hidden, head = torch.randn(3, 7, 8), torch.nn.Linear(8, 20)
    labels = torch.full((3, 7), IGNORE_INDEX)
    labels[0, 4:7], labels[1, 5:7], labels[2, 3:6] = torch.tensor([1, 2, 3]), torch.tensor([4, 5]), torch.tensor([6, 7, 8])
    return hidden, head, labels


def test_weighted_loss_equals_a_weighted_full_logit_reference():
    hidden, head, labels = random_case()
    weights = torch.tensor([2.0, 0.5, 1.0])
    token_loss = F.cross_entropy(head(hidden)[:, :-1].reshape(-1, 20), labels[:, 1:].reshape(-1),
                                 ignore_index=IGNORE_INDEX, reduction="none").view(3, 6)
    token_weight = weights[:, None] * (labels[:, 1:] != IGNORE_INDEX)
    reference = (token_loss * token_weight).sum() / token_weight.sum()
    supervised = hidden[supervised_positions(labels)[:2]]  # what the model reads
    torch.testing.assert_close(weighted_completion_loss(supervised, labels, head, weights), reference)
    torch.testing.assert_close(weighted_completion_loss(supervised, labels, head, torch.ones(3)),
                               completion_loss(supervised, labels, head))


def test_balanced_weights_give_every_class_the_same_total():
    sentiments = [0, 1, 1, 2, 2, 2]
    weights = resolve_class_weights("balanced", [1, 2, 3], 3)  # the training examples of each class
    torch.testing.assert_close(weights, torch.tensor([2.0, 1.0, 2 / 3]))
    totals = torch.bincount(torch.tensor(sentiments)).float() * weights
    assert torch.allclose(totals, totals[0].expand(3))


@pytest.mark.parametrize(("setting", "train", "message"), [
    ("balancd", [0, 1, 2], "use a list"), ([1.0, 2.0], None, "needs 3 positive"), ([1.0, 0.0, 1.0], None, "positive"),
    ("balanced", [2, 1, 0], "a class has no training example"), ("balanced", None, "needs the labeled train"),
])
def test_bad_class_weights_are_named(setting, train, message):
    with pytest.raises(ValueError, match=message):
        resolve_class_weights(setting, train, 3)


def test_module_training_step_weighs_by_class(tokenizer, tokenizer_dir, tweets):
    spec = BaseModelSpec(name=str(tokenizer_dir), random_init=True, architecture=TINY_ARCHITECTURE,
                         quantization="nf4", dtype="float32")
    module = SentimentClassifier(base=spec, class_weights=[3.0, 1.0, 0.5])
    module.configure_model()
    module.loss_weights = resolve_class_weights(module.class_weights, None, 3)
    encoder = ChatEncoder(tokenizer, PromptSpec(), 256)
    module.task = encoder.task  # as setup() takes it from the data module
    batch = Collator(tokenizer.eos_token_id)([(i, encoder.encode(tweets.texts[i], tweets.sentiments[i]))
                                              for i in range(6)])
    assert len(set(batch["sentiment"].tolist())) > 1
    torch.manual_seed(0)
    loss = module.training_step(batch, 0)
    hidden = module.hidden_states(batch["input_ids"], batch["attention_mask"],
                                  supervised_positions(batch["labels"])[:2])
    expected = weighted_completion_loss(hidden, batch["labels"], module.head,
                                        torch.tensor([3.0, 1.0, 0.5])[batch["sentiment"]])
    torch.testing.assert_close(loss, expected)
    assert not torch.allclose(loss, completion_loss(hidden, batch["labels"], module.head))
