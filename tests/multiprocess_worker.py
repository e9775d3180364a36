"""Run as a script by test_multiprocess.py; Lightning's launcher starts it once more per extra rank.

`python multiprocess_worker.py CONFIG CKPT OUT [fit]`: optionally fits with CONFIG (which writes CKPT), then
validates, tests and predicts from CKPT with the same trainer, and rank zero writes the metrics to OUT/metrics.json.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # training_runs, for the loss recorder

from sentiment_pl.cli import main  # noqa: E402


def run(config: str, ckpt: str, out: Path, fit: bool) -> None:
    cli = main(["fit" if fit else "validate", "--config", config] + ([] if fit else ["--ckpt_path", ckpt]))
    trainer, results = cli.trainer, {}
    if fit:
        trainer.validate(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt)
    results["validate"] = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt)
    results["test"] = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    trainer.predict(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt)
    if trainer.is_global_zero:
        results["world_size"] = trainer.world_size
        (out / "metrics.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2], Path(sys.argv[3]), len(sys.argv) > 4 and sys.argv[4] == "fit")
