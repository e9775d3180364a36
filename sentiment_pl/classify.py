"""`python -m sentiment_pl classify`: predict the sentiment of any file of tweets from an adapter directory."""

from __future__ import annotations

from typing import Literal

import lightning.pytorch as pl

from sentiment_pl.adapter import AdapterClassifier
from sentiment_pl.callbacks import PredictionWriter
from sentiment_pl.data import TweetSentimentData
from sentiment_pl.tweet_files import InputFormat, TweetFile


def classify(adapter: str, input: str = "-", output: str = "predictions.csv", base_name: str | None = None,
             format: InputFormat = "auto", text_column: str = "text", batch_size: int = 32,
             accelerator: Literal["auto", "cpu", "cuda", "mps"] = "auto",
             precision: str | None = None) -> None:
    """Classify every tweet of a file (or standard input) with a trained adapter; no labels, no training config.

    Writes one row per input row, in input order: index, text, sentiment and one probability per class (the
    class answers' probabilities, renormalized over the classes), as CSV or JSONL by the output's suffix; plus
    `<output>.tweeteval.txt` with one class id per line. Tweets longer than the training maximum are truncated
    (counted in the log); an empty row or a line that is not UTF-8 stops the run with its line number.

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
    """
    module = AdapterClassifier(adapter, base_name)
    data = TweetSentimentData(source=TweetFile(input, format, text_column), tokenizer=adapter,
                              prompt=module.info.prompt, max_length=module.info.max_length,
                              batch_size=batch_size, predict_split="test")
    trainer = pl.Trainer(accelerator=accelerator, devices=1, precision=precision, logger=False,
                         enable_checkpointing=False, enable_model_summary=False,
                         callbacks=[PredictionWriter(output)])
    trainer.predict(module, datamodule=data, return_predictions=False)
