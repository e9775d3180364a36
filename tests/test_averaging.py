"""EMAThenMeanAveraging: the averaged weights equal a reference EMA-then-mean over the recorded weights."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from sentiment_pl.averaging import EMAThenMeanAveraging


class _Regression(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 1)

    def training_step(self, batch, _batch_idx):
        x, y = batch
        return F.mse_loss(self.layer(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _StepRecorder(pl.Callback):
    """The weights after every optimizer step (not every batch, when gradients accumulate)."""

    def __init__(self) -> None:
        self.weights: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer, pl_module, *_args) -> None:
        if trainer.global_step > len(self.weights):
            self.weights.append(nn.utils.parameters_to_vector(pl_module.parameters()).detach().clone())


def _reference(weights: list[torch.Tensor], decay: float, mean_from: int) -> torch.Tensor:
    average = weights[0].clone()
    for step, current in enumerate(weights[1:], start=1):
        if step < mean_from:
            average = decay * average + (1 - decay) * current
        else:
            average = torch.stack(weights[mean_from : step + 1]).mean(0)
    return average


@pytest.mark.parametrize(
    ("accumulate", "mean_from_epoch", "mean_from_step"), [(1, 0.75, 6), (2, 1.0, 4), (1, 9.0, 72)]
)
def test_final_weights_are_the_ema_then_the_mean_of_every_step(accumulate, mean_from_epoch, mean_from_step):
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(32, 3), torch.randn(32, 1))
    averaging = EMAThenMeanAveraging(decay=0.7, mean_from_epoch=mean_from_epoch)
    recorder = _StepRecorder()
    trainer = pl.Trainer(
        max_epochs=2, accumulate_grad_batches=accumulate, callbacks=[averaging, recorder], logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )
    model = _Regression()
    trainer.fit(model, DataLoader(data, batch_size=4))  # 8 batches per epoch

    assert averaging.mean_from_step == mean_from_step
    assert len(recorder.weights) == 16 // accumulate
    # Training ends with the averaged weights copied into the model.
    final = nn.utils.parameters_to_vector(model.parameters()).detach()
    expected = _reference(recorder.weights, 0.7, mean_from_step)
    torch.testing.assert_close(final, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(final, recorder.weights[-1], atol=1e-3)  # an average, not the last step


@pytest.mark.parametrize(
    ("decay", "mean_from_epoch", "message"), [(1.0, 1.0, "decay=1.0"), (0.9, -0.5, "mean_from_epoch=-0.5")]
)
def test_bad_arguments_are_refused_by_name(decay, mean_from_epoch, message):
    with pytest.raises(ValueError, match=message):
        EMAThenMeanAveraging(decay=decay, mean_from_epoch=mean_from_epoch)
