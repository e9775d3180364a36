"""Writing result files so that a crash never leaves a half-written one behind."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sentiment_pl.errors import InputError


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write to a temporary file beside `path`, then rename over it (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_rows(path: str | Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Rows as CSV (header from the first row) or JSON lines, picked by the suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return atomic_write_text(path, buffer.getvalue())
    if suffix in {".jsonl", ".json"}:
        return atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    raise InputError(f"{path}: unsupported output type {suffix!r}; use .csv or .jsonl")


@contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """A temporary directory beside `target` to write into; swapped in for `target` on success, removed on failure."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        yield partial
        partial.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary shareable directory
        swap_directory(partial, target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def swap_directory(new: Path, final: Path) -> None:
    """Put the complete directory `new` at `final`, replacing what was there.

    The previous copy stays at `<final>.previous` until the new one is in place, so a crash between the two
    renames loses nothing.
    """
    previous = final.with_name(final.name + ".previous")
    if previous.exists():
        shutil.rmtree(previous)
    if final.exists():
        os.replace(final, previous)
    os.replace(new, final)
    if previous.exists():
        shutil.rmtree(previous)
