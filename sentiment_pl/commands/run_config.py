"""A training config (or the `config.yaml` a run saved beside its logs) turned back into its model, data module
and trainer, for the commands that work on a finished run. Nothing is loaded: weights load later, on demand."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import yaml

from sentiment_pl.data.sources import DataError

# Keys a run's saved config.yaml holds for its subcommand, which a plain parse of the config does not know.
SUBCOMMAND_KEYS = ("ckpt_path", "verbose", "return_predictions", "weights_only")


@dataclass
class Run:
    """What a config describes; `trainer` is the config's own (accelerator, precision, logger)."""

    model: object
    datamodule: object
    trainer: object


def instantiate_run(config: str | Path, overrides: dict | None = None) -> Run:
    """Parse `config` as `fit` would (same defaults, links and validation) and instantiate its classes.

    `overrides` are nested keys merged over the file, e.g. `{"trainer": {"logger": False}}`.
    """
    from sentiment_pl.cli import main

    path = Path(config)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise DataError(f"cannot read the config {path}: {err}") from err
    if not isinstance(values, dict):
        raise DataError(f"{path}: expected a mapping of config keys, got {type(values).__name__}")
    for key in SUBCOMMAND_KEYS:
        values.pop(key, None)
    _merge(values, overrides or {})
    with warnings.catch_warnings():  # the command's own argv is not meant for LightningCLI; it gets `args` only
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        cli = main(["--config", yaml.safe_dump(values)], run=False)
    return Run(cli.model, cli.datamodule, cli.trainer)


def _merge(into: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
