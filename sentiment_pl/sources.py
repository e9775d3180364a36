"""Where tweets come from: the hub dataset, a folder in the TweetEval layout, or CSV/JSONL files.

Every source returns a `TweetSplit`. Bad data is an error that names the file and line; nothing is dropped
silently.
"""

from __future__ import annotations

import csv
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Split = Literal["train", "validation", "test"]


class DataError(ValueError):
    """A data file is malformed; the message names the file and, where it applies, the line."""


@dataclass(frozen=True)
class TweetSplit:
    """Tweets and, when known, their class ids (None for unlabeled data)."""

    texts: list[str]
    sentiments: list[int] | None
    origin: str

    def __post_init__(self) -> None:
        if self.sentiments is not None and len(self.sentiments) != len(self.texts):
            raise DataError(f"{self.origin}: {len(self.texts)} texts but {len(self.sentiments)} labels")

    def __len__(self) -> int:
        return len(self.texts)


class TweetSource(ABC):
    """A source of labeled tweets, split into train / validation / test."""

    @abstractmethod
    def load(self, split: Split, class_names: tuple[str, ...]) -> TweetSplit:
        """Read one split; class ids index `class_names`."""


class HubTweetEval(TweetSource):
    """A dataset on the Hugging Face hub with `text` and `label` columns (needs network or the hub cache).

    Args:
        path: Dataset repository.
        name: Dataset configuration.
        revision: Git revision to pin, for reproducible runs.
    """

    def __init__(self, path: str = "cardiffnlp/tweet_eval", name: str | None = "sentiment",
                 revision: str | None = None) -> None:
        self.path, self.name, self.revision = path, name, revision

    def load(self, split: Split, class_names: tuple[str, ...]) -> TweetSplit:
        import datasets  # imported here: parsing a config must not pay for it

        ds = datasets.load_dataset(self.path, self.name, split=split, revision=self.revision)
        origin = f"{self.path}/{self.name}[{split}]"
        texts, labels = list(ds["text"]), [int(x) for x in ds["label"]]
        for row, (text, label) in enumerate(zip(texts, labels)):
            _check_row(origin, f"row {row}", text, label, len(class_names))
        return TweetSplit(texts, labels, origin)


class TweetEvalFolder(TweetSource):
    """A folder in the original TweetEval layout: `{train,val,test}_text.txt`, `{...}_labels.txt`, `mapping.txt`.

    Args:
        path: The folder, e.g. `../shared/data/tweet_eval/sentiment`.
    """

    FILE_PREFIX = {"train": "train", "validation": "val", "test": "test"}

    def __init__(self, path: str) -> None:
        self.path = path

    def load(self, split: Split, class_names: tuple[str, ...]) -> TweetSplit:
        folder = Path(self.path)
        self._check_mapping(folder / "mapping.txt", class_names)
        prefix = self.FILE_PREFIX[split]
        text_file, label_file = folder / f"{prefix}_text.txt", folder / f"{prefix}_labels.txt"
        texts, labels = read_lines(text_file), read_lines(label_file)
        if len(texts) != len(labels):
            raise DataError(f"{text_file} has {len(texts)} lines but {label_file} has {len(labels)}")
        ids = [parse_label(raw, class_names, f"{label_file}:{i}") for i, raw in enumerate(labels, 1)]
        for i, (text, label) in enumerate(zip(texts, ids), 1):
            _check_row(str(text_file), f"line {i}", text, label, len(class_names))
        return TweetSplit(texts, ids, str(text_file))

    @staticmethod
    def _check_mapping(path: Path, class_names: tuple[str, ...]) -> None:
        if not path.exists():
            return  # mapping.txt is documentation in TweetEval; the label files carry the ids
        rows = [line.split("\t") for line in read_lines(path) if line.strip()]
        if len(rows) != len(class_names):
            raise DataError(f"{path} maps {len(rows)} classes but class_names has {len(class_names)}: "
                            f"{list(class_names)}")


class LocalFiles(TweetSource):
    """CSV or JSONL files (picked by suffix: .csv, .jsonl, .json) with a text column and a label column.

    Args:
        train: File for the train split.
        validation: File for the validation split.
        test: File for the test split.
        text_column: Column (CSV header or JSON key) holding the tweet.
        label_column: Column holding the class, as an id (0, 1, 2) or a class name.
    """

    def __init__(self, train: str | None = None, validation: str | None = None, test: str | None = None,
                 text_column: str = "text", label_column: str = "label") -> None:
        self.files = {"train": train, "validation": validation, "test": test}
        self.text_column, self.label_column = text_column, label_column

    def load(self, split: Split, class_names: tuple[str, ...]) -> TweetSplit:
        file = self.files[split]
        if file is None:
            raise DataError(f"LocalFiles has no file for the {split!r} split; set data.source.init_args.{split}")
        texts, labels = [], []
        for where, record in read_table(Path(file)):
            for column in (self.text_column, self.label_column):
                if column not in record:
                    raise DataError(f"{where}: no column {column!r} (has {sorted(record)})")
            text, label = record[self.text_column], parse_label(record[self.label_column], class_names, where)
            _check_row(where, None, text, label, len(class_names))
            texts.append(text)
            labels.append(label)
        return TweetSplit(texts, labels, file)


def read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 file (LF or CRLF); an undecodable line is an error naming its number."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror}") from err
    return decode_lines(raw, str(path))


def decode_lines(raw: bytes, origin: str) -> list[str]:
    """Split UTF-8 bytes into lines (LF or CRLF); an undecodable line is an error naming `origin:line`."""
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the last line
    out = []
    for number, line in enumerate(lines, 1):
        try:
            out.append(line.decode("utf-8").removesuffix("\r"))
        except UnicodeDecodeError as err:
            raise DataError(f"{origin}:{number}: not valid UTF-8 ({err.reason} at byte {err.start})") from err
    return out


def read_table(path: Path, lines: list[str] | None = None, suffix: str | None = None):
    """Yield (`file:line`, record) from a CSV (with header) or JSON-lines file; `lines` and `suffix` stand in
    for the file's content and type when it is not on disk (standard input)."""
    suffix = (suffix or path.suffix).lower()
    if suffix not in {".csv", ".jsonl", ".json"}:
        raise DataError(f"{path}: unsupported file type {suffix!r}; use .csv or .jsonl")
    lines = read_lines(path) if lines is None else lines
    if suffix == ".csv":
        # Line ends given back: a quoted field may span lines, and csv joins them only with their newline.
        reader = csv.DictReader(f"{line}\n" for line in lines)
        for record in reader:
            yield f"{path}:{reader.line_num}", record
        return
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{number}: invalid JSON ({err.msg})") from err
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        yield f"{path}:{number}", record


def parse_label(raw: object, class_names: tuple[str, ...], where: str) -> int:
    """A class id from an id (int or digit string) or a class name."""
    text = str(raw).strip()
    if text in class_names:
        return class_names.index(text)
    if text.lstrip("-").isdigit() and 0 <= int(text) < len(class_names):
        return int(text)
    raise DataError(f"{where}: unknown label {text!r}; expected 0..{len(class_names) - 1} or one of "
                    f"{list(class_names)}")


def _check_row(origin: str, row: str | None, text: object, label: int, num_classes: int) -> None:
    where = f"{origin}:{row.removeprefix('line ')}" if row and row.startswith("line ") else (
        f"{origin} {row}" if row else origin)
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{where}: empty tweet")
    if not 0 <= label < num_classes:
        raise DataError(f"{where}: unknown label {label}; expected 0..{num_classes - 1}")
