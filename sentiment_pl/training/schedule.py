"""The learning-rate schedule: a transformers schedule by name, its warm-up given as a fraction of the run.

A fraction rather than a step count, so a config keeps meaning the same schedule when the data, batch size or
epochs change.
"""

from __future__ import annotations

import torch

from sentiment_pl.errors import InputError


def check_schedule(warmup_ratio: float) -> None:
    """Refuse a warm-up fraction that leaves no run, before any model loads."""
    if not 0 <= warmup_ratio < 1:
        raise InputError(f"model.warmup_ratio={warmup_ratio} must be in [0, 1)")


def build_schedule(optimizer: torch.optim.Optimizer, name: str, total_steps: int,
                   warmup_ratio: float) -> torch.optim.lr_scheduler.LRScheduler:
    """The named transformers schedule over `total_steps` optimizer steps (the module checks the fraction when
    it is built, before any model loads)."""
    from transformers import get_scheduler

    return get_scheduler(name, optimizer, num_warmup_steps=int(warmup_ratio * total_steps),
                         num_training_steps=total_steps)
