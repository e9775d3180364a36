"""What the tweet tokens a from-scratch model never read cost it, judged on validation: `data.drop_unseen_tokens`.

Validation holds few such tokens (0.18 %, against test's 3.15 % in 30.4 % of its tweets), so it cannot show their
cost directly. The proxy gives validation test's drift: a fixed draw picks as large a share of validation tweets
as test has tweets holding never-read tokens, and inserts into each, at random places in the tweet, as many
never-read tokens as a test tweet holding them has (drawn from test's counts), taken from the never-read tokens
of test's tweets. Dropping them restores the clean tweet, so the question is what the raw model makes of them.
Each checkpoint is validated on the real split with and without the drop, and on the corrupted split without
it; with it, the corrupted split is the real split with the drop (checked, not re-scored). Reads test's inputs,
never its labels.

    python bench/unseen_tokens.py --checkpoints runs/quality/version_3/checkpoints/best-....ckpt ...
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, machine, require_assets, write_json  # noqa: E402


def corrupt(examples, read, margins, test_examples, seed: int):
    """Validation with test's never-read tokens inserted as test has them (see the module's docstring)."""
    from sentiment_pl.vocabulary import tweet_span, with_tweet

    counts, pool = [], []
    for e in test_examples:
        unseen = [i for i in e.input_ids[tweet_span(e, margins)] if not read[i]]
        if unseen:
            counts.append(len(unseen))
            pool += unseen
    share = len(counts) / len(test_examples)
    rng = random.Random(seed)
    out = list(examples)
    for index in rng.sample(range(len(out)), round(share * len(out))):
        tweet = out[index].input_ids[tweet_span(out[index], margins)]
        for token in rng.choices(pool, k=rng.choice(counts)):
            tweet.insert(rng.randint(0, len(tweet)), token)
        out[index] = with_tweet(out[index], tweet, margins)
    return out, {"test_share_holding": share, "test_mean_per_holding_tweet": statistics.mean(counts),
                 "pool_tokens": len(pool), "pool_distinct": len(set(pool))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoints", type=Path, nargs="+", required=True, help="quality-run best checkpoints")
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "quality.yaml")
    p.add_argument("--seed", type=int, default=0, help="seed of the insertion draw")
    p.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "unseen_tokens.json")
    args = p.parse_args()
    require_assets()
    for checkpoint in args.checkpoints:
        if not checkpoint.is_file():
            sys.exit(f"--checkpoints: {checkpoint} is not a file")
    from sentiment_pl.batching import EncodedDataset
    from sentiment_pl.cli import main as cli_main
    from sentiment_pl.vocabulary import drop_unread, read_tokens

    # The splits as encoded, whatever the config says: the script applies the drop itself.
    cli = cli_main(["--config", str(args.config), "--trainer.logger", "false", "--trainer.enable_progress_bar",
                    "false", "--data.drop_unseen_tokens", "false"], run=False)
    dm, model, trainer = cli.datamodule, cli.model, cli.trainer
    dm.setup("fit")
    dm.setup("test")
    margins = dm.encoder.tweet_margins
    read = read_tokens(dm.datasets["train"].examples, margins, len(dm.tokenizer))
    clean = dm.datasets["validation"].examples
    corrupted, drift = corrupt(clean, read, margins, dm.datasets["test"].examples, args.seed)
    dropped = [drop_unread(e, read, margins) for e in clean]
    if [drop_unread(e, read, margins) for e in corrupted] != dropped:
        sys.exit("the corrupted split with the drop is not the real split with the drop")
    variants = {"real, kept": clean, "real, dropped": dropped, "corrupted, kept": corrupted}
    rows = []
    for checkpoint in args.checkpoints:
        row = {"checkpoint": str(checkpoint)}
        for name, examples in variants.items():
            dm.datasets["validation"] = EncodedDataset(examples)
            metrics = trainer.validate(model, datamodule=dm, ckpt_path=str(checkpoint), verbose=False)[0]
            row[name] = {k.removeprefix("val/"): round(float(v), 4) for k, v in metrics.items()
                         if k in ("val/macro_f1", "val/macro_recall", "val/accuracy")}
        rows.append(row)
        print(checkpoint.parent.parent.name, "  ".join(f"{n}: {row[n]['macro_f1']:.4f}" for n in variants),
              flush=True)
    summary = {n: statistics.median(r[n]["macro_f1"] for r in rows) for n in variants}
    print("median macro-F1  " + "  ".join(f"{n}: {v:.4f}" for n, v in summary.items()))
    write_json(args.output, {"machine": machine(), "drift": drift, "rows": rows, "median_macro_f1": summary})
    cost, change = (summary["real, dropped"] - summary[k] for k in ("corrupted, kept", "real, kept"))
    print(f"unseen_token_cost_macro_f1={cost:.4f} real_drop_minus_keep={change:.4f}")


if __name__ == "__main__":
    main()
