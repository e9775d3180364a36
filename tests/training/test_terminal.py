"""What a run prints: the step budget once, no dependency notices, a progress bar that counts the step budget, and
a run without a logger works."""

from types import SimpleNamespace

import pytest

from sentiment_pl.__main__ import main
from sentiment_pl.training.progress import Progress
from training_runs import tiny_config, tweeteval_folder, write_config


def bar_for(**trainer) -> Progress:
    bar = Progress()
    progress = SimpleNamespace(current=SimpleNamespace(ready=trainer.pop("ready", 0)))
    bar._trainer = SimpleNamespace(fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(batch_progress=progress)),
                                   **trainer)
    return bar


def test_the_training_bar_counts_the_step_budget_not_the_epoch():
    bar = bar_for(num_training_batches=2851, max_steps=150, global_step=0, accumulate_grad_batches=2,
                  max_epochs=-1)
    assert bar.total_train_batches == 300
    assert bar._get_train_description(0).strip() == "Epoch 0"
    resumed = bar_for(num_training_batches=2851, max_steps=150, global_step=100, accumulate_grad_batches=1,
                      ready=100, max_epochs=-1)
    assert resumed.total_train_batches == 150  # 100 done in this epoch, 50 to go
    by_epochs = bar_for(num_training_batches=2851, max_steps=-1, global_step=0, accumulate_grad_batches=1,
                        max_epochs=2)
    assert by_epochs.total_train_batches == 2851 and by_epochs._get_train_description(0).strip() == "Epoch 0/1"


@pytest.fixture(scope="module")
def printed(tmp_path_factory, tokenizer_dir, tweeteval_dir):
    """What a short fit with `--trainer.logger false` prints, stdout and stderr together."""
    import contextlib
    import io
    import logging
    import warnings

    tmp = tmp_path_factory.mktemp("terminal")
    data = tweeteval_folder(tmp / "data", tweeteval_dir, {"train": 16, "val": 8, "test": 8})
    config = tiny_config(tmp, tokenizer_dir, data, {"trainer": {"max_steps": 2, "limit_val_batches": 1.0,
                                                                "val_check_interval": 2}})
    config["checkpoint"] = {"dirpath": str(tmp / "ckpt")}
    config["last_checkpoint"] = {"dirpath": str(tmp / "ckpt"), "every_n_train_steps": 1}
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    logging.getLogger().addHandler(handler)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), \
                warnings.catch_warnings(record=True) as caught:
            main(["fit", "--config", str(write_config(tmp / "config.yaml", config)), "--trainer.logger", "false"])
    finally:
        logging.getLogger().removeHandler(handler)
    # Warnings are part of what the user sees: Python prints them on stderr.
    return out.getvalue() + "".join(f"{w.category.__name__}: {w.message}\n" for w in caught)


def test_a_run_without_a_logger_trains_and_prints_its_result(printed):
    assert "best checkpoint: " in printed and printed.count("this model") == 1


def test_the_step_budget_is_printed_once_and_dependency_notices_not_at_all(printed):
    assert printed.count("samples per optimizer step (batch 4 x accumulation 1 x 1 device(s))") == 1
    for notice in ("💡 Tip", "litlogger", "LeafSpec", "does not have many workers", "is_gradient_checkpointing",
                   "sync_dist"):
        assert notice not in printed, notice
