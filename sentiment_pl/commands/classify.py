"""`python -m sentiment_pl classify`: predict the sentiment of any file of tweets from an adapter directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import lightning.pytorch as pl

from sentiment_pl.data.datamodule import TweetSentimentData
from sentiment_pl.data.sources import DataError
from sentiment_pl.data.tweet_files import BlankRows, InputFormat, TweetFile
from sentiment_pl.model.adapter import AdapterInfo
from sentiment_pl.training.adapter_classifier import AdapterClassifier
from sentiment_pl.training.callbacks.predictions import PredictionWriter


def classify(adapter: str, input: str = "-", output: str = "predictions.csv", base_name: str | None = None,
             format: InputFormat = "auto", text_column: str = "text", batch_size: int = 32,
             accelerator: Literal["auto", "cpu", "cuda", "mps"] = "auto",
             precision: str | None = None, calibration: str | None = None, blank_rows: BlankRows = "error") -> None:
    """Classify every tweet of a file (or standard input) with a trained adapter; no labels, no training config.

    Writes one row per input row, in input order: index, text, sentiment and one probability per class (the
    class answers' probabilities, renormalized over the classes), as CSV or JSONL by the output's suffix; plus
    `<output>.tweeteval.txt` with one class id per line. Tweets longer than the training maximum are truncated
    (counted in the log); a line that is not UTF-8 stops the run with its line number, and so does an empty row
    unless `--blank_rows mark` asks for a marked row in its place.

    Args:
        adapter: Adapter directory written by `export` (`OUTPUT/adapter`).
        input: Tweets: a text file (one per line), `.csv`, `.jsonl`, or `-` for standard input.
        output: Predictions file, `.csv` or `.jsonl`.
        base_name: Hub id or directory of the base model, if not the one recorded in the adapter.
        format: Input format; `auto` picks by suffix (standard input: text).
        text_column: CSV column or JSON key that holds the tweet.
        batch_size: Tweets per forward pass.
        accelerator: Device to run on.
        precision: Lightning precision, e.g. `bf16-mixed` on a GPU; default full precision.
        calibration: A `calibration.json` written by `test --calibration.enabled true`: its per-class bias is
            added to the class log-scores before the probabilities and the class are taken.
        blank_rows: `error` (default): a blank row stops the run, naming its line; `mark`: it gets an output row
            with an empty class and no probabilities, so the output has one row per input row to join on.
    """
    bias = read_calibration(calibration, AdapterInfo.read(adapter).prompt.class_names) if calibration else None
    module = AdapterClassifier(adapter, base_name, bias)
    source = TweetFile(input, format, text_column, blank_rows)
    source.load("test", module.info.prompt.class_names)  # read first (once): the writer needs the blank rows
    data = TweetSentimentData(source=source, tokenizer=adapter,
                              prompt=module.info.prompt, max_length=module.info.max_length,
                              batch_size=batch_size, predict_split="test")
    trainer = pl.Trainer(accelerator=accelerator, devices=1, precision=precision, logger=False,
                         enable_checkpointing=False, enable_model_summary=False,
                         callbacks=[PredictionWriter(output, source.blank_positions)])
    trainer.predict(module, datamodule=data, return_predictions=False)


def read_calibration(path: str, class_names: tuple[str, ...]) -> list[float]:
    """The bias of a calibration file, checked against the adapter's classes."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        names, bias = record["class_names"], [float(b) for b in record["bias"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"{path}: not a calibration file ({err})") from err
    if list(names) != list(class_names) or len(bias) != len(names):
        raise DataError(f"{path}: calibrated for classes {names}, but the adapter has {list(class_names)}")
    return bias
