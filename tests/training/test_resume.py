"""Resume is exact: a run interrupted by a signal after optimizer step k and resumed from the checkpoint it left
behind computes the same losses for the remaining batches as a run that was never interrupted (dropout on, linear
schedule with warm-up, gradient accumulation, and a schedule pushed by a time limit), so a lost optimizer,
scheduler or random state, or a repeated or skipped batch, shows. Also: checkpoint files are written atomically."""

import signal
from pathlib import Path

import pytest
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from sentiment_pl.cli import main
from sentiment_pl.training.checkpointing import AtomicCheckpointIO
from training_runs import deep_update, recorded, recording, signal_at, tiny_config, tweeteval_folder, write_config

pytestmark = pytest.mark.slow
ACCUMULATE = {"trainer": {"accumulate_grad_batches": 2, "max_steps": 6}}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, tweeteval_dir):
    return tweeteval_folder(tmp_path_factory.mktemp("data"), tweeteval_dir, {"train": 40, "val": 8, "test": 8})


def fit(tmp: Path, tokenizer_dir, data_dir, overrides: dict, args=()) -> list[dict]:
    callbacks = overrides.get("trainer", {}).get("callbacks", [])
    config = tiny_config(tmp, tokenizer_dir, data_dir, deep_update(overrides, {
        "trainer": {"callbacks": [recording(tmp / "losses.jsonl"), *callbacks]}}))
    main(["fit", "--config", str(write_config(tmp / "input" / "config.yaml", config)), *args])
    return recorded(tmp / "losses.jsonl")


def interrupted_then_resumed(tmp: Path, tokenizer_dir, data_dir, overrides: dict, signum: int, step: int):
    """Losses before the interruption, and after resuming from the checkpoint it left."""
    first = tmp / "first"
    with pytest.raises((SIGTERMException, SystemExit)):  # SIGTERM raises; Ctrl-C exits with status 1
        fit(first, tokenizer_dir, data_dir, deep_update(overrides, {"trainer": {"callbacks": [
            *overrides.get("trainer", {}).get("callbacks", []), signal_at(step, signum)]}}))
    ckpt = first / "logs" / "run" / "v" / "checkpoints" / "interrupted.ckpt"
    assert ckpt.exists(), f"the interrupted run left no checkpoint: {sorted(ckpt.parent.iterdir())}"
    before = recorded(first / "losses.jsonl")
    after = fit(tmp / "resumed", tokenizer_dir, data_dir, overrides, ["--ckpt_path", str(ckpt)])
    return before, after


def assert_same_run(reference: list[dict], before: list[dict], after: list[dict]) -> None:
    assert [r["indices"] for r in before + after] == [r["indices"] for r in reference], "batches differ"
    assert [r["step"] for r in before + after] == [r["step"] for r in reference]
    for ours, theirs in zip(before + after, reference):
        assert ours["loss"] == pytest.approx(theirs["loss"], rel=1e-6, abs=1e-6), (ours, theirs)


def test_resume_after_sigterm_equals_uninterrupted_run(tmp_path, tokenizer_dir, data_dir):
    reference = fit(tmp_path / "reference", tokenizer_dir, data_dir, ACCUMULATE)
    assert len(reference) == 12 and len({r["loss"] for r in reference}) == 12
    before, after = interrupted_then_resumed(tmp_path, tokenizer_dir, data_dir, ACCUMULATE, signal.SIGTERM, 2)
    assert len(before) == 4 and len(after) == 8  # the rest of epoch 0 (10 batches) and 2 batches of epoch 1
    assert_same_run(reference, before, after)
    # The finished run removed the interruption checkpoint and wrote the adapter.
    assert not (tmp_path / "resumed" / "logs" / "run" / "v" / "checkpoints" / "interrupted.ckpt").exists()
    assert (tmp_path / "resumed" / "logs" / "run" / "v" / "adapter" / "adapter_model.safetensors").exists()


def test_resume_under_a_time_limit_equals_uninterrupted_run(tmp_path, tokenizer_dir, data_dir):
    # A (simulated) 3-second limit at 1 second a step: the clock ends the 6 steps at step 3, having pushed the
    # schedule ahead all along; the checkpoint (loaded weights-only) must carry the schedule on from there.
    clock = {"class_path": "training_runs.StepClock", "init_args": {"duration": {"seconds": 3}}}
    limited = deep_update(ACCUMULATE, {"trainer": {"callbacks": [clock]}})
    reference = fit(tmp_path / "reference", tokenizer_dir, data_dir, limited)
    assert len(reference) == 6 and len({r["loss"] for r in reference}) == 6
    before, after = interrupted_then_resumed(tmp_path, tokenizer_dir, data_dir, limited, signal.SIGTERM, 1)
    assert len(before) == 2 and len(after) == 4
    assert_same_run(reference, before, after)


@pytest.fixture
def ctrl_c_interrupts():
    """Ctrl-C raises KeyboardInterrupt, as in a terminal, even when the tests were started in the background
    (`nohup ... &`), where the shell starts Python with SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_leaves_a_resumable_checkpoint(tmp_path, tokenizer_dir, data_dir, ctrl_c_interrupts):
    overrides = {"trainer": {"max_steps": 4}}
    reference = fit(tmp_path / "reference", tokenizer_dir, data_dir, overrides)
    before, after = interrupted_then_resumed(tmp_path, tokenizer_dir, data_dir, overrides, signal.SIGINT, 1)
    assert_same_run(reference, before, after)


def test_checkpoint_write_is_atomic(tmp_path):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("crash while writing")

    with pytest.raises(RuntimeError, match="crash while writing"):
        io.save_checkpoint({"step": 2, "payload": torch.zeros(1000), "bad": Unpicklable()}, path)
    assert torch.load(path)["step"] == 1  # the previous checkpoint is intact
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # and no partial file is left
