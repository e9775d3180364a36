"""Label-shift calibration: a per-class bias added to the class log-scores, fitted on the validation split.

Why a bias: when the class priors move between splits but what each class looks like does not, Bayes' rule
corrects the posterior by adding log(p_new(class) / p_old(class)) to each class's log-score, a per-class
constant. The new priors are unknown without peeking at test labels, so the constants are chosen to maximise
macro-F1 on validation, the metric being reported; macro-F1 rewards recall on small classes, which is what a
classifier trained on skewed priors gives up. Caveat, measured on TweetEval: validation's priors are train's
(16/43/41 % vs 16/45/39 %), not test's (32/48/19 %), so this corrects the model's own bias towards frequent
training classes, not the test shift itself.

How: coordinate ascent. With the other biases fixed, the predictions change only where one class's bias crosses
a threshold `max(other scores) - its score` of some example, so scanning those thresholds finds the best value for
that coordinate exactly (up to `max_candidates`). Each accepted step strictly raises validation macro-F1, so the
result never scores below the uncalibrated model on the data it was fitted on.
"""

from __future__ import annotations

import torch


def macro_f1_of_predictions(preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Macro-F1 of many prediction sets at once: preds [candidates, N] -> [candidates].

    Classes absent from both truth and predictions score 0, as torchmetrics and sklearn do by default.
    """
    k = num_classes
    index = torch.arange(len(preds), device=preds.device)[:, None] * k * k + targets[None, :] * k + preds
    confusion = torch.bincount(index.flatten(), minlength=len(preds) * k * k).view(-1, k, k).double()
    tp = confusion.diagonal(dim1=1, dim2=2)
    denominator = confusion.sum(1) + confusion.sum(2)  # predicted + true counts per class
    f1 = torch.where(denominator > 0, 2 * tp / denominator.clamp(min=1), torch.zeros_like(tp))
    return f1.mean(1)


def fit_class_bias(scores: torch.Tensor, targets: torch.Tensor, max_rounds: int = 20,
                   max_candidates: int = 2000) -> torch.Tensor:
    """The per-class bias (class 0 fixed at 0: a common shift changes nothing) maximising macro-F1 of
    `argmax(scores + bias)` against `targets`; scores [N, C], targets [N]."""
    scores, targets = scores.double().cpu(), targets.long().cpu()
    k = scores.shape[1]
    bias = torch.zeros(k, dtype=torch.double)
    best = float(macro_f1_of_predictions((scores + bias).argmax(-1)[None], targets, k)[0])
    for _ in range(max_rounds):
        improved = False
        for c in range(1, k):
            value, f1 = _best_coordinate(scores + bias, targets, c, max_candidates)
            if f1 > best + 1e-12:
                bias[c] += value
                best, improved = f1, True
        if not improved:
            break
    return bias.float()


def _best_coordinate(scores: torch.Tensor, targets: torch.Tensor, c: int,
                     max_candidates: int) -> tuple[float, float]:
    """The change of class c's bias that gives the best macro-F1, with the other classes fixed."""
    others = scores.clone()
    others[:, c] = -torch.inf
    runner_up, runner_class = others.max(1)
    thresholds = torch.unique(runner_up - scores[:, c])  # class c wins above its example's threshold
    if len(thresholds) > max_candidates:
        thresholds = torch.quantile(thresholds, torch.linspace(0, 1, max_candidates, dtype=torch.double))
    candidates = torch.cat([thresholds[:1] - 1, (thresholds[1:] + thresholds[:-1]) / 2, thresholds[-1:] + 1,
                            torch.zeros(1, dtype=torch.double)]).sort().values
    wins = scores[None, :, c] + candidates[:, None] > runner_up[None, :]
    preds = torch.where(wins, c, runner_class[None, :])
    f1 = macro_f1_of_predictions(preds, targets, scores.shape[1])
    ties = (f1 == f1.max()).nonzero().flatten()
    # Among equally good values, the middle one: the centre of the winning interval, not its edge.
    pick = ties[len(ties) // 2]
    return float(candidates[pick]), float(f1[pick])
