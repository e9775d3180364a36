"""End to end through LightningCLI: a 4-bit tiny Llama + LoRA fits on real tweets, then validate / test /
predict run from its checkpoint. Also: every config in configs/ parses."""

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml

from conftest import ROOT, TINY_ARCHITECTURE, tiny_base_config
from sentiment_pl.cli import main
from sentiment_pl.model.base import BaseModelSpec, LoraSettings, add_adapters, load_base_model
from sentiment_pl.training.module import VALIDATION_KEY

pytestmark = pytest.mark.slow


def scalars(log_dir: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0}).Reload()
    tags = events.Tags()
    out = {tag: [e.value for e in events.Scalars(tag)] for tag in tags["scalars"]}
    out.update({f"image:{tag}": [] for tag in tags["images"]})
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory, tokenizer_dir, tweets):
    """Fit once for the whole module: 32 real tweets, 40 steps."""
    tmp = tmp_path_factory.mktemp("run")
    for split, rows in {"train": range(0, 32), "val": range(32, 64)}.items():
        with open(tmp / f"{split}.jsonl", "w") as f:
            for i in rows:
                f.write(json.dumps({"text": tweets.texts[i], "label": tweets.sentiments[i]}) + "\n")
    config = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "max_epochs": 10, "check_val_every_n_epoch": 5,
                    "log_every_n_steps": 1, "enable_progress_bar": False, "enable_model_summary": False,
                    "default_root_dir": str(tmp),
                    "logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                               "init_args": {"save_dir": str(tmp / "runs"), "name": "t", "version": "fit"}}},
        "model": {"base": tiny_base_config(tokenizer_dir),
                  "lora": {"dropout": 0.0},
                  "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.01}},
                  "lr_schedule": "constant"},
        "data": {"source": {"class_path": "sentiment_pl.data.sources.LocalFiles",
                            "init_args": {"train": str(tmp / "train.jsonl"), "validation": str(tmp / "val.jsonl"),
                                          "test": str(tmp / "val.jsonl")}},
                 "batch_size": 8, "max_length": 128},
        "predictions": {"output": str(tmp / "fit_predictions.csv")},
    }
    # Not in default_root_dir: runs without a logger save their resolved config.yaml there.
    (tmp / "input").mkdir()
    path = tmp / "input" / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    cli = main(["fit", "--config", str(path)])
    cli.trainer.predict(cli.model, datamodule=cli.datamodule)  # predictions of the in-memory final weights
    return {"dir": tmp, "config": path, "cli": cli, "log_dir": tmp / "runs" / "t" / "fit"}


def test_fit_logs_to_tensorboard_and_loss_goes_down(run):
    logged = scalars(run["log_dir"])
    losses = logged["train/loss"]
    assert len(losses) == 40
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 3, losses
    for tag in ("val/macro_f1", "val/macro_recall", "val/accuracy", "val/f1_negative", "val/loss",
                "lr-AdamW", "train/padding_efficiency", "train/device/samples_per_sec", "train/device/items_per_sec",
                "image:val/confusion_matrix"):
        assert tag in logged, f"{tag} not in {sorted(logged)}"


def test_only_lora_weights_change(run, tokenizer_dir):
    spec = BaseModelSpec(name=str(tokenizer_dir), random_init=True, architecture=TINY_ARCHITECTURE,
                         quantization="nf4", dtype="float32")
    fresh = dict(add_adapters(load_base_model(spec), spec, LoraSettings(dropout=0.0)).named_parameters())
    changed = [n for n, p in run["cli"].model.model.named_parameters() if not torch.equal(p.data, fresh[n].data)]
    assert changed and all("lora_" in n for n in changed)
    assert any("lora_B" in n for n in changed)  # B starts at zero: training moved it


def test_checkpoint_holds_only_adapter_weights(run):
    ckpt = torch.load(run["dir"] / "runs" / "t" / "fit" / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["state_dict"] and all("lora_" in k for k in ckpt["state_dict"])
    assert "optimizer_states" in ckpt and ckpt["global_step"] == 40
    # It carries its own weights' validation figures (validation ran at step 40), as plain numbers.
    validation = torch.load(run["log_dir"] / "checkpoints" / "last.ckpt", weights_only=True)[VALIDATION_KEY]
    assert validation["step"] == 40 and validation["tweets"] == 32
    assert validation["macro_f1"] == pytest.approx(scalars(run["log_dir"])["val/macro_f1"][-1], abs=1e-6)


def read_predictions(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_validate_test_predict_from_checkpoint(run, capsys):
    last = str(run["log_dir"] / "checkpoints" / "last.ckpt")
    common = ["--config", str(run["config"]), "--ckpt_path", last]
    capsys.readouterr()
    validate = main(["validate", *common, "--trainer.logger", "false"])
    printed = capsys.readouterr().out
    assert printed.count("this model") == 1 and f"validation of {last}: 32 tweets" in printed
    row = next(line for line in printed.splitlines() if line.startswith("this model")).split()
    assert float(row[2]) == pytest.approx(float(validate.trainer.callback_metrics["val/macro_f1"]), abs=5e-5)
    main(["test", *common, "--trainer.logger", "false"])
    out = capsys.readouterr().out
    assert "this model" in out and "always positive" in out and "uniform random (expected)" in out
    output = run["dir"] / "ckpt_predictions.jsonl"
    main(["predict", *common, "--trainer.logger", "false", "--predictions.output", str(output)])
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(32))
    assert [r["text"] for r in rows] == [json.loads(x)["text"] for x in (run["dir"] / "val.jsonl").open()]
    for r in rows:
        assert abs(sum(r[f"p_{c}"] for c in ("negative", "neutral", "positive")) - 1) < 1e-4
    official = (run["dir"] / "ckpt_predictions.tweeteval.txt").read_text().split()
    assert official == [str(["negative", "neutral", "positive"].index(r["sentiment"])) for r in rows]
    # The checkpoint restores the trained adapter exactly: same probabilities as the in-memory model.
    in_memory = read_predictions(run["dir"] / "fit_predictions.csv")
    for a, b in zip(rows, in_memory):
        assert a["p_positive"] == pytest.approx(float(b["p_positive"]), abs=1e-5)


@pytest.mark.parametrize("config", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_config_parses_without_loading_a_model(config, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("parsing a config loaded a model")

    monkeypatch.setattr("sentiment_pl.training.module.load_base_model", refuse)
    for subcommand in ("fit", "validate", "test", "predict"):
        with pytest.raises(SystemExit) as exit_info:
            main([subcommand, "--config", str(config), "--print_config"])
        assert exit_info.value.code == 0
        printed = yaml.safe_load(capsys.readouterr().out)
        assert printed["model"]["base"]["name"] and printed["data"]["source"]["class_path"]
