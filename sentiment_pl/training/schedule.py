"""The learning-rate schedule: a transformers schedule by name, its warm-up given as a fraction of the run, and a
run that may be bounded by the clock as well as by steps.

A fraction rather than a step count, so a config keeps meaning the same schedule when the data, batch size or
epochs change. Under `trainer.max_time` the schedule follows whichever of steps and time is further along: a run
the clock stops still warms up, decays and ends its schedule where a run that finishes its steps would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Timer
from torch.optim.lr_scheduler import LambdaLR

from sentiment_pl.errors import InputError


def check_schedule(warmup_ratio: float) -> None:
    """Refuse a warm-up fraction that leaves no run, before any model loads."""
    if not 0 <= warmup_ratio < 1:
        raise InputError(f"model.warmup_ratio={warmup_ratio} must be in [0, 1)")


class ClockedSchedule(LambdaLR):
    """A step schedule that the clock may push ahead: at each step it takes the rates of step
    max(step, clock() x total_steps), where `clock()` is the fraction of the time budget spent.

    While the steps run ahead of the clock the rates are the step schedule's own, exactly; once the clock is
    ahead, the schedule reaches its end when the budget does. `clock` is read once per step; under several
    processes it must return the same number on every one (the caller broadcasts it), or the replicas would
    train at different rates.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, step_lambdas: list[Callable[[float], float]],
                 total_steps: int, clock: Callable[[], float]) -> None:
        self.total_steps, self.clock, self.clock_steps = total_steps, clock, 0.0
        super().__init__(optimizer, [self._ahead(f) for f in step_lambdas])

    def _ahead(self, rate: Callable[[float], float]) -> Callable[[int], float]:
        return lambda step: rate(max(step, self.clock_steps))

    def step(self, epoch: int | None = None) -> None:
        self.clock_steps = self.clock() * self.total_steps
        super().step(epoch)

    def state_dict(self) -> dict[str, Any]:
        # The clock is the trainer's (restored with it on resume), not the schedule's to save.
        return {k: v for k, v in super().state_dict().items() if k != "clock"}


def build_schedule(optimizer: torch.optim.Optimizer, name: str, total_steps: int, warmup_ratio: float,
                   clock: Callable[[], float] | None = None) -> torch.optim.lr_scheduler.LRScheduler:
    """The named transformers schedule over `total_steps` optimizer steps (the module checks the fraction when
    it is built, before any model loads); with `clock`, pushed ahead by it (`ClockedSchedule`)."""
    from transformers import get_scheduler

    schedule = get_scheduler(name, optimizer, num_warmup_steps=int(warmup_ratio * total_steps),
                             num_training_steps=total_steps)
    if clock is None:
        return schedule
    if not isinstance(schedule, LambdaLR):
        raise InputError(f"model.lr_schedule={name!r} cannot follow trainer.max_time; use a schedule of steps "
                         "such as linear or cosine, or leave max_time out")
    return ClockedSchedule(optimizer, schedule.lr_lambdas, total_steps, clock)


def time_limit(trainer: pl.Trainer) -> Timer | None:
    """The Lightning `Timer` that enforces `trainer.max_time` (it keeps the time, across a resume too); None
    without a limit."""
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    return timer if timer is not None and timer.time_remaining() is not None else None


def limit_seconds(timer: Timer) -> float:
    """The length of the time limit (Lightning keeps it private): time spent plus time left, exact while the
    clock stands (before training starts, after it ends)."""
    return timer.time_elapsed() + timer.time_remaining()


def time_budget_spent(trainer: pl.Trainer) -> Callable[[], float] | None:
    """The fraction of `trainer.max_time` spent training, the same number on every process (rank zero's clock,
    broadcast); None without a time limit."""
    timer = time_limit(trainer)
    if timer is None:
        return None

    budget = limit_seconds(timer)

    def spent() -> float:
        return float(trainer.strategy.broadcast(timer.time_elapsed() / budget))

    return spent
