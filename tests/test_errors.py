"""Bad user input ends any command with one line that names the file, key or value at fault, and exit status 1;
no traceback, nothing written."""

from pathlib import Path

import pytest

from sentiment_pl.__main__ import main
from training_runs import tiny_config, tweeteval_folder, write_config


@pytest.fixture
def data(tmp_path, tweeteval_dir) -> Path:
    return tweeteval_folder(tmp_path / "data", tweeteval_dir, {"train": 16, "val": 8, "test": 8})


def one_line_error(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    message = str(exit_info.value.code)
    assert message.startswith("error: ") and "\n" not in message, message
    assert "Traceback" not in capsys.readouterr().err
    return message


@pytest.mark.parametrize("command", ["fit", "validate", "test", "predict"])
def test_a_bad_label_file_is_one_line_naming_file_and_line(command, tmp_path, tokenizer_dir, data, capsys):
    split = {"fit": "train", "validate": "val", "test": "test", "predict": "test"}[command]
    labels = data / f"{split}_labels.txt"
    lines = labels.read_text().splitlines()
    lines[6] = "3"
    labels.write_text("\n".join(lines) + "\n")
    config = write_config(tmp_path / "config.yaml", tiny_config(tmp_path, tokenizer_dir, data))
    message = one_line_error([command, "--config", str(config)], capsys)
    assert f"{labels}:7: unknown label '3'" in message
    assert not (tmp_path / "logs" / "run" / "v" / "checkpoints").exists()


def test_a_missing_model_path_names_the_key_the_value_and_the_directory(tmp_path, tokenizer_dir, data, capsys,
                                                                       monkeypatch):
    config = tiny_config(tmp_path, tokenizer_dir, data)
    config["model"]["base"]["name"] = "../no/such/model"
    monkeypatch.chdir(tmp_path)
    message = one_line_error(["fit", "--config", str(write_config(tmp_path / "config.yaml", config))], capsys)
    assert "model.base.name" in message and "'../no/such/model': no such file or directory" in message
    assert f"(resolved against {tmp_path})" in message


def test_a_bad_config_value_is_one_line_naming_the_key(tmp_path, tokenizer_dir, data, capsys):
    config = write_config(tmp_path / "config.yaml", tiny_config(tmp_path, tokenizer_dir, data))
    message = one_line_error(["fit", "--config", str(config), "--model.warmup_ratio", "1.0"], capsys)
    assert "model.warmup_ratio=1.0 must be in [0, 1)" in message


def test_a_trainer_setting_lightning_refuses_is_one_line_naming_the_value(tmp_path, tokenizer_dir, data, capsys):
    config = write_config(tmp_path / "config.yaml", tiny_config(tmp_path, tokenizer_dir, data))
    message = one_line_error(["fit", "--config", str(config), "--trainer.max_time", "40min"], capsys)
    assert message.startswith("error: trainer: `Timer(duration='40min')` is not a valid duration."), message
    assert not (tmp_path / "logs").exists()


def test_a_bug_keeps_its_traceback(tmp_path, tokenizer_dir, data, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a real bug")

    monkeypatch.setattr("sentiment_pl.data.datamodule.TweetSentimentData.setup", broken)
    config = write_config(tmp_path / "config.yaml", tiny_config(tmp_path, tokenizer_dir, data))
    with pytest.raises(ZeroDivisionError):
        main(["fit", "--config", str(config)])
