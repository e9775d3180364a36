"""The quality results file that `quality.py` and `seq_cls.py` both write: one record per configuration and seed.

`bench/results/quality_smollm2.json` holds `{"records": [...]}`; a record is keyed by (`config`, `seed`) and
rewritten in place when the same pair runs again, so a rerun replaces its row instead of adding a second one.
Every record has `config`, `seed`, `fit_seconds`, `val_macro_f1`, `test_macro_f1`, `test_macro_recall`,
`test_accuracy`; the rest (commands, per-class figures, the machine) is free-form.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from _common import ROOT, write_json

RESULTS = ROOT / "bench" / "results" / "quality_smollm2.json"
REQUIRED = ("config", "seed", "fit_seconds", "val_macro_f1", "test_macro_f1", "test_macro_recall", "test_accuracy")


def read_records(path: Path = RESULTS) -> list[dict[str, Any]]:
    return json.loads(path.read_text())["records"] if path.exists() else []


def save_record(record: dict[str, Any], path: Path = RESULTS) -> None:
    """Add `record`, replacing the one with the same config and seed; the file is rewritten atomically."""
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise ValueError(f"quality record lacks {missing}")
    records = [r for r in read_records(path) if (r["config"], r["seed"]) != (record["config"], record["seed"])]
    records.append(record)
    write_json(path, {"records": records})
    print(f"wrote {record['config']} seed {record['seed']} to {path}", flush=True)


def medians(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per configuration, in first-seen order: the number of seeds, the median of every score, and the fastest fit.

    The fastest fit, not the median: a run that shared the cores with another is slower for a reason that is not
    the configuration's, and the least-disturbed run is the closest to what it costs alone.
    """
    by_config: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_config.setdefault(r["config"], []).append(r)
    keys = ("val_macro_f1", "val_macro_recall", "test_macro_f1", "test_macro_recall", "test_accuracy")
    out = {}
    for config, rows in by_config.items():
        figures = {k: statistics.median(r[k] for r in rows) for k in keys
                   if all(r.get(k) is not None for r in rows)}
        fits = [r["fit_seconds"] for r in rows if r.get("fit_seconds")]
        out[config] = {"seeds": len(rows), "fit_seconds": min(fits) if fits else None, **figures}
    return out
