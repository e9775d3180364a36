"""How far validation and test drift from train's vocabulary, and what a trained model holds for the tokens it
never read.

Counts, with the real tokenizer, the share of each split's tokens (and of its tweets holding at least one) that
never occur in a training tweet. Given a checkpoint of a from-scratch model (`configs/quality.yaml`), it also
describes the embedding rows of those never-read tokens: a tied output layer trains them as answer candidates
only, so as inputs they carry whatever that left behind. Looks at test inputs, never at test labels.

    python bench/vocabulary_shift.py [--checkpoint runs/quality/version_<N>/checkpoints/best-<...>.ckpt]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, TOKENIZER, machine, read_split, require_assets, write_json  # noqa: E402



def never_read_rows(checkpoint: Path, seen, tokenizer) -> dict[str, float]:
    """Norms and directions of the embedding rows of tokens never in a training tweet, beside the read ones,
    and the cosine of their mean with each class's first answer token, the vector the model scores it by."""
    import torch
    from torch.nn.functional import cosine_similarity, normalize

    from sentiment_pl.encoding import ChatEncoder
    from sentiment_pl.prompts import PromptSpec

    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    tables = [v for k, v in state.items() if k.endswith("embed_tokens.weight")]
    if not tables:
        sys.exit(f"{checkpoint} holds no embedding table: it is not a full-training (lora: null) checkpoint")
    table = tables[0].float()
    unseen = table[~seen]
    mean = unseen.mean(0)
    sample = normalize(unseen[:2000], dim=1)
    out = {"row_norm_read": table[seen].norm(dim=1).mean().item(),
           "row_norm_never_read": unseen.norm(dim=1).mean().item(),
           "mean_pairwise_cosine_never_read": (sample @ sample.T).mean().item()}
    # The answers as the chat template renders them after the assistant turn (`negative`, `neut`, `pos`), not
    # the words as tweets spell them (`▁negative`, ...): the encoder is the one place that tokenizes them.
    prompt = PromptSpec(system_prompt="")
    for name, answer in zip(prompt.class_names, ChatEncoder(tokenizer, prompt, max_length=160).answers):
        out[f"cosine_never_read_mean_vs_{name}"] = cosine_similarity(mean, table[answer[0]], dim=0).item()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, help="a quality-run checkpoint whose embedding rows to describe")
    p.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "vocabulary_shift.json")
    args = p.parse_args()
    require_assets()
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
    ids = {split: tokenizer(read_split(split)[0], add_special_tokens=False)["input_ids"]
           for split in ("train", "validation", "test")}
    seen = torch.zeros(len(tokenizer), dtype=torch.bool)
    for tweet in ids["train"]:
        seen[tweet] = True
    results: dict[str, object] = {"train_token_ids": int(seen.sum())}
    for split in ("validation", "test"):
        tokens = torch.tensor([t for tweet in ids[split] for t in tweet])
        holding = sum(not bool(seen[tweet].all()) for tweet in ids[split])
        results[split] = {"tokens_never_in_train": (~seen[tokens]).float().mean().item(),
                          "tweets_holding_one": holding / len(ids[split])}
        print(f"{split:10s} tokens never in a training tweet {results[split]['tokens_never_in_train']:.2%}, "
              f"tweets holding one {results[split]['tweets_holding_one']:.1%}")
    if args.checkpoint:
        results["checkpoint"] = str(args.checkpoint)
        results["never_read_rows"] = never_read_rows(args.checkpoint, seen, tokenizer)
        for key, value in results["never_read_rows"].items():
            print(f"{key:40s} {value:.3f}")
    write_json(args.output, {"machine": machine(), "results": results})
    print(f"wrote {args.output}")
    print(f"val_unseen={results['validation']['tokens_never_in_train']:.4f} "
          f"test_unseen={results['test']['tokens_never_in_train']:.4f}")


if __name__ == "__main__":
    main()
