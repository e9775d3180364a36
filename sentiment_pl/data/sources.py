"""Where tweets come from: the hub dataset, a folder in the TweetEval layout, or CSV/JSONL files.

Every source returns a `TweetSplit`. Bad data is an error that names the file and line; nothing is dropped
silently.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sentiment_pl.data.reading import DataError, read_lines, read_table

Split = Literal["train", "validation", "test"]


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
        names = getattr(ds.features.get("label"), "names", None)
        if names:  # the dataset's own class names, honoured by name as a folder's mapping.txt is
            order = [parse_label(name, class_names, f"{origin} label names") for name in names]
            labels = [order[x] if 0 <= x < len(order) else x for x in labels]
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
        order = read_mapping(folder / "mapping.txt", class_names)
        prefix = self.FILE_PREFIX[split]
        text_file, label_file = folder / f"{prefix}_text.txt", folder / f"{prefix}_labels.txt"
        texts, labels = read_lines(text_file), read_lines(label_file)
        if len(texts) != len(labels):
            raise DataError(f"{text_file} has {len(texts)} lines but {label_file} has {len(labels)}")
        ids = [parse_label(raw, class_names, f"{label_file}:{i}") for i, raw in enumerate(labels, 1)]
        if order is not None:  # the folder numbers the classes its own way: its ids -> ours, by name
            ids = [order[i] for i in ids]
        for i, (text, label) in enumerate(zip(texts, ids), 1):
            _check_row(str(text_file), f"line {i}", text, label, len(class_names))
        return TweetSplit(texts, ids, str(text_file))


def read_mapping(path: Path, class_names: tuple[str, ...]) -> list[int] | None:
    """A TweetEval `mapping.txt` (`<id><tab><class name>` per line), honoured: for each of the folder's ids, the
    index of its class in `class_names`, matched by name; None when there is no file or it numbers the classes
    as `class_names` does. A mapping that names other classes is refused, never ignored: labels read against the
    wrong class order would train a confident classifier that is wrong on every example of two classes."""
    if not path.exists():
        return None
    lowered = [n.lower() for n in class_names]
    order: dict[int, int] = {}
    for number, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        fields = line.split("\t") if "\t" in line else line.split(maxsplit=1)
        if len(fields) != 2 or not fields[0].strip().isdigit():
            raise DataError(f"{path}:{number}: expected '<id><tab><class name>', got {line!r}")
        folder_id, name = int(fields[0]), fields[1].strip()
        if name.lower() not in lowered:
            raise DataError(f"{path}:{number}: class {name!r} is not one of data.prompt.class_names "
                            f"{list(class_names)}")
        if folder_id in order or lowered.index(name.lower()) in order.values():
            raise DataError(f"{path}:{number}: id {folder_id} or class {name!r} is mapped twice")
        order[folder_id] = lowered.index(name.lower())
    if sorted(order) != list(range(len(class_names))):
        raise DataError(f"{path} maps ids {sorted(order)}; data.prompt.class_names has {len(class_names)} classes: "
                        f"{list(class_names)}")
    mapping = [order[i] for i in range(len(class_names))]
    return None if mapping == list(range(len(class_names))) else mapping


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


def parse_label(raw: object, class_names: tuple[str, ...], where: str) -> int:
    """A class id from an id (int or digit string) or a class name."""
    text = str(raw).strip()
    lowered = [n.lower() for n in class_names]
    if text.lower() in lowered:  # spreadsheets capitalize: "Positive" is positive
        return lowered.index(text.lower())
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
