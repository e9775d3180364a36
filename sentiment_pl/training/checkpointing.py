"""What a LoRA run saves and reads back: checkpoints written atomically and loaded without unpickling code, the
random state for an exact resume, a checkpoint when the run is interrupted, and the adapter directory."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

from sentiment_pl.errors import InputError

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint file to a temporary file in the same directory, then renames it over the target.

    Lightning's own save goes through an fsspec transaction whose temporary file lies in the system temp
    directory; when that is another filesystem the final move is a copy, and a crash during it leaves a truncated
    `last.ckpt`. A rename within one directory is atomic on POSIX.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class ExactResume(Callback):
    """Saves the random state (torch, CUDA, numpy, Python) with every checkpoint and restores it on resume, right
    before the first training batch, so dropout draws the same masks as in an uninterrupted run.

    Resuming happens only when asked (`--ckpt_path`) and is announced in one line; a new run beside an earlier
    run's checkpoints says so. The data order needs no state: the training sampler is seeded by epoch and skips
    the batches the checkpoint had already consumed. Data loaders draw their worker seeds from their own
    generator, not the global one, so the moment a loader is created does not shift the random stream.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        states = _collect_rng_states(include_cuda=torch.cuda.is_available())
        # numpy's state holds an ndarray, which `torch.load(weights_only=True)` refuses; plain lists load anywhere.
        states["numpy"] = tuple(x.tolist() if hasattr(x, "tolist") else x for x in states["numpy"])
        return {"rng": states}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict.get("rng")

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        announce_resume(trainer, trainer.ckpt_path)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self._pending is not None:
            _set_rng_states(self._pending)
            self._pending = None


class SaveOnInterrupt(Callback):
    """On SIGINT (Ctrl-C), SIGTERM (as schedulers send before a kill) or an error, saves the state of the last
    completed batch to `<checkpoints dir>/interrupted.ckpt`; resume with `--ckpt_path` on it.

    Lightning turns SIGTERM into an exception at the next batch boundary and Ctrl-C into KeyboardInterrupt; both
    reach `on_exception`. A run that finishes removes the file. Not Lightning's `OnExceptionCheckpoint`: with one
    of those, a `fit` without `--ckpt_path` resumes silently from whatever last checkpoint it finds.

    Args:
        dirpath: Where to write it; defaults to the directory of the `last_checkpoint` callback.
        filename: File name without the extension.
    """

    def __init__(self, dirpath: str | None = None, filename: str = "interrupted") -> None:
        self.dirpath, self.filename = dirpath or "", filename

    @property
    def ckpt_path(self) -> str:
        return os.path.join(self.dirpath, self.filename + ".ckpt")

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not self.dirpath:
            dirs = checkpoint_dirs(trainer)
            self.dirpath = dirs[0] if dirs else os.path.join(trainer.log_dir or trainer.default_root_dir,
                                                             "checkpoints")

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if trainer.state.fn != "fit" or trainer.state.stage not in ("train", "validate") or not self.dirpath:
            return  # nothing to resume outside of the fit loop
        if trainer.world_size > 1 and not isinstance(exception, (KeyboardInterrupt, SIGTERMException)):
            return  # an error on one rank: the others would wait forever in the collective save
        log.warning("%s: saving %s; resume with --ckpt_path %s", type(exception).__name__, self.ckpt_path,
                    self.ckpt_path)
        trainer.save_checkpoint(self.ckpt_path)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit" and self.dirpath and os.path.exists(self.ckpt_path):
            trainer.strategy.remove_checkpoint(self.ckpt_path)


def checkpoint_dirs(trainer: pl.Trainer) -> list[str]:
    """The directories the run's checkpoint callbacks write to (those resolved so far), in callback order."""
    return [cb.dirpath for cb in trainer.checkpoint_callbacks if getattr(cb, "dirpath", None)]


def announce_resume(trainer: pl.Trainer, ckpt_path: str | None) -> None:
    """One line before `fit` starts: from which checkpoint it resumes, or that it starts afresh beside the
    checkpoints an earlier run left in the same directory (which are never picked up unasked)."""
    if not trainer.is_global_zero:
        return
    if ckpt_path:
        log.info("resuming from %s", ckpt_path)
        return
    earlier = sorted(str(p) for d in set(checkpoint_dirs(trainer)) if os.path.isdir(d) for p in Path(d).glob("*.ckpt"))
    if earlier:
        log.warning("starting a new run; %s already holds %d checkpoint(s) of an earlier run, which this one "
                    "may overwrite (resume instead with --ckpt_path %s)", os.path.dirname(earlier[0]),
                    len(earlier), earlier[-1])


class AdapterExport(Callback):
    """At the end of `fit`, writes the adapter directory that `classify` and `export` read (the peft adapter,
    the tokenizer with its chat template, `sentiment_pl.json`), holding the best checkpoint's weights (by the
    `checkpoint` callback's monitor), or the final weights when no best checkpoint was kept.

    Args:
        dirpath: Target directory; defaults to `<log_dir>/adapter`.
    """

    def __init__(self, dirpath: str | None = None) -> None:
        self.dirpath = dirpath

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from sentiment_pl.model.adapter import save_adapter

        # `trainer.log_dir` is a collective (rank zero broadcasts it): every rank asks, before rank zero writes.
        target = Path(self.dirpath or os.path.join(trainer.log_dir or trainer.default_root_dir, "adapter"))
        if not trainer.is_global_zero or not hasattr(getattr(pl_module, "model", None), "peft_config"):
            return  # full training has no adapter; its weights are in the checkpoint
        best = getattr(trainer.checkpoint_callback, "best_model_path", "")
        dm = trainer.datamodule
        if best and os.path.isfile(best):  # a DeepSpeed checkpoint is a directory: its weights are in memory
            with weights_of(pl_module, load_checkpoint(best)["state_dict"]):
                save_adapter(pl_module, dm.tokenizer, dm.prompt, dm.max_length, dm.task, target)
            log.info("adapter of the best checkpoint (%s) saved to %s", os.path.basename(best), target)
        else:
            save_adapter(pl_module, dm.tokenizer, dm.prompt, dm.max_length, dm.task, target)
            log.info("adapter (final weights, step %d) saved to %s", trainer.global_step, target)


@contextmanager
def weights_of(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> Iterator[None]:
    """The module with the weights of `state` (a subset of its state dict), its own given back afterwards."""
    own = {k: v.detach().clone() for k, v in module.state_dict().items() if k in state}
    module.load_state_dict(state, strict=False)
    try:
        yield
    finally:
        module.load_state_dict(own, strict=False)


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint's contents, loaded with `weights_only=True`: tensors and plain values only, so a checkpoint
    someone sent can never run code here. One that needs unpickling anything else is refused."""
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise InputError(f"{path}: no such checkpoint") from err
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{path}: refused, the checkpoint holds objects that only unpickling arbitrary code "
                         f"could load ({first})") from err
