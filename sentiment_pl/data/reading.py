"""Reading text files as other programs write them: editors and spreadsheets on every system.

Accepted: UTF-8 with or without a byte-order mark (Excel's "CSV UTF-8", Notepad), UTF-16 with its mark (Excel's
"Unicode text"), LF, CRLF or CR-only line ends (old Mac editors); CSV with a comma, semicolon or tab delimiter
(spreadsheets in locales whose decimal mark is a comma save semicolons), TSV, JSON lines, and a JSON array of
objects. Anything else is an error naming the file and line; nothing is guessed or dropped.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sentiment_pl.errors import InputError

TABLE_SUFFIXES = {".csv", ".tsv", ".jsonl", ".json"}


class DataError(InputError):
    """A data file is malformed; the message names the file and, where it applies, the line."""


def read_lines(path: Path) -> list[str]:
    """The lines of a text file (see the module docstring for the encodings and line ends accepted)."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror}") from err
    return decode_lines(raw, str(path))


def decode_lines(raw: bytes, origin: str) -> list[str]:
    """Split a file's bytes into lines; an undecodable line is an error naming `origin:line`."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:  # to UTF-8, so line ends and line numbers follow one rule below
            raw = raw.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"{origin}: not valid UTF-16 ({err.reason} at byte {err.start})") from err
    raw = raw.removeprefix(codecs.BOM_UTF8)
    if b"\r" in raw and b"\n" not in raw:
        raw = raw.replace(b"\r", b"\n")  # CR-only line ends; a lone CR inside a LF file stays text
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the last line
    out = []
    for number, line in enumerate(lines, 1):
        try:
            out.append(line.decode("utf-8").removesuffix("\r"))
        except UnicodeDecodeError as err:
            raise DataError(f"{origin}:{number}: not valid UTF-8 ({err.reason} at byte {err.start}); save the file "
                            "as UTF-8") from err
    return out


def read_table(path: Path, lines: list[str] | None = None, suffix: str | None = None
               ) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (`file:line`, record) from a CSV/TSV (with a header), JSON-lines or JSON-array file; `lines` and
    `suffix` stand in for the file's content and type when it is not on disk (standard input)."""
    suffix = (suffix or path.suffix).lower()
    if suffix not in TABLE_SUFFIXES:
        raise DataError(f"{path}: unsupported file type {suffix!r}; use .csv, .tsv, .jsonl or .json")
    lines = read_lines(path) if lines is None else lines
    if suffix in {".csv", ".tsv"}:
        yield from _csv(path, lines, "\t" if suffix == ".tsv" else _delimiter(lines))
        return
    first = next((line.strip() for line in lines if line.strip()), "")
    if first.startswith("["):
        yield from _json_array(path, lines)
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


def _delimiter(lines: list[str]) -> str:
    """The header's delimiter: a comma unless the header holds none and has semicolons or tabs."""
    header = lines[0] if lines else ""
    if "," in header:
        return ","
    return max(";\t", key=header.count) if any(d in header for d in ";\t") else ","


def _csv(path: Path, lines: list[str], delimiter: str) -> Iterator[tuple[str, dict[str, Any]]]:
    # Line ends given back: a quoted field may span lines, and csv joins them only with their newline.
    reader = csv.DictReader((f"{line}\n" for line in lines), delimiter=delimiter)
    try:
        for record in reader:
            if None in record:
                raise DataError(f"{path}:{reader.line_num}: more fields than the header's {len(reader.fieldnames)}")
            yield f"{path}:{reader.line_num}", record
    except csv.Error as err:
        raise DataError(f"{path}:{reader.line_num}: {err}") from err


def _json_array(path: Path, lines: list[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        records = json.loads("\n".join(lines))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from err
    if not isinstance(records, list):
        raise DataError(f"{path}: expected a JSON array of objects, got {type(records).__name__}")
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise DataError(f"{path}: item {index}: expected a JSON object, got {type(record).__name__}")
        yield f"{path}: item {index}", record
