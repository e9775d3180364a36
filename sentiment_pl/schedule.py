"""The learning-rate schedule: a transformers schedule by name, its phases given as fractions of the run.

Fractions rather than step counts, so a config keeps meaning the same schedule when the data, batch size or epochs
change. `warmup_stable_decay` holds the peak rate between its warm-up and a final decay (to 0, cosine-shaped):
the run can stay at a high rate while it still learns and anneal only at the end.
"""

from __future__ import annotations

import torch

WSD = "warmup_stable_decay"


def check_schedule(name: str, warmup_ratio: float, decay_ratio: float) -> None:
    """Refuse phase fractions that do not fit the schedule, before any model loads."""
    if not 0 <= warmup_ratio < 1:
        raise ValueError(f"warmup_ratio={warmup_ratio} must be in [0, 1)")
    if name == WSD and not 0 < decay_ratio <= 1 - warmup_ratio:
        raise ValueError(f"lr_schedule={WSD} needs decay_ratio in (0, 1 - warmup_ratio = {1 - warmup_ratio:g}], "
                         f"got {decay_ratio}")
    if name != WSD and decay_ratio:
        raise ValueError(f"decay_ratio={decay_ratio} applies to lr_schedule={WSD} only, not {name!r}")


def build_schedule(optimizer: torch.optim.Optimizer, name: str, total_steps: int, warmup_ratio: float,
                   decay_ratio: float = 0.0) -> torch.optim.lr_scheduler.LRScheduler:
    """The named transformers schedule over `total_steps` optimizer steps; the fractions as `check_schedule`
    accepts them (the module checks them when it is built, before any model loads)."""
    from transformers import get_scheduler

    warmup = int(warmup_ratio * total_steps)
    extra = {"num_decay_steps": round(decay_ratio * total_steps)} if name == WSD else None
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps,
                         scheduler_specific_kwargs=extra)
