"""Tweets to classify, without labels: a plain text file (one tweet per line), CSV, JSONL, or standard input.

Every row of the input becomes one row of output, in order; a row that cannot be classified (empty, or not
UTF-8) is an error that names its line, never a silently dropped or shifted row; blank rows may instead be
marked in place (`blank_rows: mark`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from sentiment_pl.data.reading import DataError, decode_lines, read_table
from sentiment_pl.data.sources import Split, TweetSource, TweetSplit

InputFormat = Literal["auto", "text", "csv", "tsv", "jsonl", "json"]
BlankRows = Literal["error", "mark"]
STDIN = "-"


class TweetFile(TweetSource):
    """One file of unlabeled tweets, used for every split (`classify` reads it as the predict split).

    Args:
        path: The file, or `-` for standard input.
        format: `text` (one tweet per line), `csv`/`tsv` (with a header), `jsonl`, `json` (an array of objects);
            `auto` picks by suffix (anything unknown is text; standard input is text).
        text_column: The CSV column or JSON key holding the tweet.
        blank_rows: `error`: a blank row stops the run with its line number; `mark`: it is left out of the model
            input and its positions are kept in `blank_positions`, so the output can mark them in place.
    """

    def __init__(self, path: str, format: InputFormat = "auto", text_column: str = "text",
                 blank_rows: BlankRows = "error") -> None:
        self.path, self.format, self.text_column, self.blank_rows = path, format, text_column, blank_rows
        self._cache: TweetSplit | None = None
        self.blank_positions: list[int] = []

    @property
    def resolved_format(self) -> str:
        if self.format != "auto":
            return self.format
        suffix = Path(self.path).suffix.lower() if self.path != STDIN else ""
        return {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "json"}.get(suffix, "text")

    def load(self, split: Split, class_names: tuple[str, ...]) -> TweetSplit:
        if self._cache is None:  # standard input can be read only once
            self._cache = self._read()
        return self._cache

    def _read(self) -> TweetSplit:
        origin = "<stdin>" if self.path == STDIN else self.path
        if self.path == STDIN:
            raw = sys.stdin.buffer.read()
        else:
            try:
                raw = Path(self.path).read_bytes()
            except OSError as err:
                raise DataError(f"cannot read {self.path}: {err.strerror}") from err
        lines = decode_lines(raw, origin)
        fmt = self.resolved_format
        if fmt == "text":
            rows = [(f"{origin}:{number}", line) for number, line in enumerate(lines, 1)]
        else:
            rows = [(where, self._text(where, record))
                    for where, record in read_table(Path(origin), lines, suffix=f".{fmt}")]
        blank = [i for i, (_, text) in enumerate(rows) if not text.strip()]
        if blank and self.blank_rows == "error":
            raise DataError(f"{rows[blank[0]][0]}: empty tweet; remove the line or give it text, or keep one "
                            "output row per input row with --blank_rows mark")
        self.blank_positions = blank
        texts = [text for _, text in rows if text.strip()]
        if not texts:
            raise DataError(f"{origin}: no tweets")
        return TweetSplit(texts, None, origin)

    def _text(self, where: str, record: dict) -> str:
        if self.text_column not in record:
            raise DataError(f"{where}: no column {self.text_column!r} (has {sorted(record)}); set text_column")
        value = record[self.text_column]
        if not isinstance(value, str):
            raise DataError(f"{where}: column {self.text_column!r} holds {type(value).__name__}, not text")
        return value
