"""Classification by free generation, the way the seed evaluated: greedy answers, parsed back into classes.

Kept to measure how often a model follows the one-word format; class scoring is the real evaluation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch


def parse_answer(text: str, class_names: Sequence[str]) -> tuple[int | None, bool]:
    """(class id or None, whether the answer was exactly one class name).

    Exact: the answer, stripped of whitespace, surrounding punctuation and case, is a class name. Otherwise the
    first class name that appears as a word anywhere in the answer is taken; none is None (always wrong).
    """
    names = [n.lower() for n in class_names]
    clean = text.strip().strip(".!\"'`*").strip().lower()
    if clean in names:
        return names.index(clean), True
    found = [(m.start(), names.index(m.group(0))) for m in re.finditer(
        r"\b(" + "|".join(re.escape(n) for n in names) + r")\b", text.lower())]
    return (min(found)[1] if found else None), False


@torch.no_grad()
def generate_answers(model, prompts: Sequence[Sequence[int]], tokenizer, batch_size: int = 16,
                     max_new_tokens: int = 8) -> list[str]:
    """Greedy continuations of token-id prompts, decoded without special tokens; input order kept.

    Prompts are left-padded (the new tokens must follow each prompt directly) and batched by length. The model
    generates in eval mode (no dropout: greedy answers are then deterministic) and gets its mode back.
    """
    training = model.training
    model.eval()
    try:
        return _generate(model, prompts, tokenizer, batch_size, max_new_tokens)
    finally:
        model.train(training)


def _generate(model, prompts: Sequence[Sequence[int]], tokenizer, batch_size: int, max_new_tokens: int) -> list[str]:
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    answers: list[str] = [""] * len(prompts)
    for start in tqdm(range(0, len(order), batch_size), desc="generating", disable=len(order) <= batch_size):
        rows = order[start: start + batch_size]
        width = max(len(prompts[i]) for i in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            ids[r, width - len(prompts[i]):] = torch.tensor(list(prompts[i]))
            mask[r, width - len(prompts[i]):] = 1
        out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=False,
                             max_new_tokens=max_new_tokens, pad_token_id=pad, use_cache=True,
                             temperature=None, top_p=None, top_k=None)
        for r, i in enumerate(rows):
            answers[i] = tokenizer.decode(out[r, width:], skip_special_tokens=True)
    return answers
