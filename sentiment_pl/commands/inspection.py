"""`python -m sentiment_pl inspect`: the encoded data as the model sees it, token by token, and its statistics."""

from __future__ import annotations

import torch

from sentiment_pl.commands.run_config import instantiate_run
from sentiment_pl.data.encoding import IGNORE_INDEX, Encoded
from sentiment_pl.data.sources import Split

STAGE_OF: dict[str, str] = {"train": "fit", "validation": "validate", "test": "test"}  # data setup stages


def inspect(train_config: str, split: Split = "train", examples: int = 2, first: int = 0,
            statistics: list[Split] | None = None) -> None:
    """Print examples token by token, marking the tokens that carry loss, then statistics of the encoded splits.

    Each token is shown with its position, id, text and whether it is a training target; the tokens after the
    last target (the template's trailing newline) and the whole prompt must not be. The statistics count
    tweets, classes, sample and prompt lengths in tokens, truncated tweets and supervised tokens per example.

    Args:
        train_config: The training config (or a run's saved `config.yaml`); its `data` section is what is inspected.
        split: The split the examples come from.
        examples: How many examples to print token by token.
        first: Index of the first example printed.
        statistics: Splits to summarise; default the examples' split. Encoding all of train takes a minute.
    """
    data = instantiate_run(train_config, {"trainer": {"logger": False}}).datamodule
    for name in dict.fromkeys([split, *(statistics or [split])]):
        data.setup(STAGE_OF[name])
    dataset, tokenizer = data.datasets[split], data.tokenizer
    for index in range(first, min(first + examples, len(dataset))):
        print(format_tokens(dataset.examples[index], tokenizer, f"{split}[{index}]", data.prompt.class_names))
    for name in statistics or [split]:
        print(format_statistics(name, data.datasets[name].examples, data.truncated[name], data.max_length,
                                data.prompt.class_names))


def format_tokens(example: Encoded, tokenizer, title: str, class_names: tuple[str, ...]) -> str:
    """One line per token: position, id, the token as the tokenizer spells it, and `LOSS` on training targets."""
    targets = sum(label != IGNORE_INDEX for label in example.labels)
    truth = class_names[example.sentiment] if example.sentiment is not None else "unlabeled"
    lines = [f"{title}: {truth}, {len(example.input_ids)} tokens, prompt {example.prompt_length}, "
             f"{targets} carry loss{', tweet truncated' if example.truncated else ''}",
             f"{'pos':>5s} {'id':>6s}  {'token':24s} loss"]
    for pos, (token_id, label, token) in enumerate(zip(example.input_ids, example.labels,
                                                       tokenizer.convert_ids_to_tokens(example.input_ids))):
        lines.append(f"{pos:5d} {token_id:6d}  {token!r:24s} {'LOSS' if label != IGNORE_INDEX else ''}")
    answer = [t for t in example.labels if t != IGNORE_INDEX]
    lines.append(f"loss-carrying text: {tokenizer.decode(answer)!r}\n")
    return "\n".join(lines)


def _summary(values: list[int]) -> str:
    x = torch.tensor(values, dtype=torch.double)
    p50, p99 = torch.quantile(x, torch.tensor([0.5, 0.99], dtype=torch.double)).tolist()
    return f"mean {x.mean():.1f}, median {p50:.0f}, p99 {p99:.0f}, min {x.min():.0f}, max {x.max():.0f}"


def format_statistics(split: str, examples: list[Encoded], truncated: int, max_length: int,
                      class_names: tuple[str, ...]) -> str:
    """Counts and token-length summaries of one encoded split."""
    supervised = [sum(label != IGNORE_INDEX for label in e.labels) for e in examples]
    lines = [f"{split}: {len(examples)} examples; {truncated} tweets truncated to fit max_length={max_length}",
             f"  tokens per sample:         {_summary([len(e.input_ids) for e in examples])}",
             f"  prompt tokens:             {_summary([e.prompt_length for e in examples])}",
             f"  supervised tokens/example: {_summary(supervised)}; "
             f"{sum(s == 0 for s in supervised)} examples with none"]
    known = [e.sentiment for e in examples if e.sentiment is not None]
    if known:
        counts = torch.bincount(torch.tensor(known), minlength=len(class_names)).tolist()
        lines.append("  classes: " + ", ".join(f"{n} {c} ({c / len(known):.1%})" for n, c in zip(class_names, counts)))
    return "\n".join(lines)
