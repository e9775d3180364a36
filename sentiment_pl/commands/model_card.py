"""The model card `export` writes as `README.md` into the adapter and the merged model: Hugging Face's format (YAML
metadata with a `model-index`, then Markdown), filled from the run itself, never by hand.

What it holds: the checkpoint's validation figures (and test's, when `test` left `<checkpoint>.test.json` beside
it) beside the trivial baselines, with per-class F1 and the confusion matrix; the recipe; the system prompt; how
classification works; a usage snippet for that directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sentiment_pl.training.metrics import trivial_baselines

TWEETEVAL = {"id": "cardiffnlp/tweet_eval", "config": "sentiment", "name": "TweetEval (sentiment)"}
SPLIT_TITLES = {"validation": "Validation", "test": "Test"}


@dataclass(frozen=True)
class CardFacts:
    """Everything the card states, gathered by `export` from the checkpoint, the config and the data."""

    title: str
    base_name: str
    base_model_id: str | None  # a hub id for the metadata, when the base has one
    license: str
    class_names: tuple[str, ...]
    system_prompt: str
    answer_ids: tuple[int, ...]  # the first answer token of each class, as the chat template tokenizes it
    recipe: dict[str, Any]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # split -> metrics_record
    tweeteval: bool = True


def model_card(facts: CardFacts, kind: str) -> str:
    """The card for `kind` = `adapter` (peft) or `merged` (plain transformers)."""
    sections = [_metadata(facts, kind), f"# {facts.title}", _summary(facts, kind), _results(facts),
                _how(facts), _recipe(facts), _prompt(facts), _usage(facts, kind), _limits(facts)]
    return "\n\n".join(s for s in sections if s) + "\n"


def _metadata(facts: CardFacts, kind: str) -> str:
    meta: dict[str, Any] = {}
    if facts.base_model_id:
        meta["base_model"] = facts.base_model_id
    if facts.tweeteval:
        meta["datasets"] = [TWEETEVAL["id"]]
    meta.update({"library_name": "peft" if kind == "adapter" else "transformers", "license": facts.license,
                 "pipeline_tag": "text-generation", "language": ["en"],
                 "tags": ["sentiment-analysis", "text-classification", "lora", "sentiment_pl"]})
    results = []
    for split, record in facts.results.items():
        dataset = ({"type": TWEETEVAL["id"], "name": TWEETEVAL["name"], "config": TWEETEVAL["config"],
                    "split": split} if facts.tweeteval else {"type": "local", "name": "local files", "split": split})
        results.append({"task": {"type": "text-classification", "name": "Sentiment classification"},
                        "dataset": dataset, "metrics": [
                            {"type": "f1", "value": round(record["macro_f1"], 4), "name": "macro-F1",
                             "args": {"average": "macro"}},
                            {"type": "recall", "value": round(record["macro_recall"], 4), "name": "macro-recall",
                             "args": {"average": "macro"}},
                            {"type": "accuracy", "value": round(record["accuracy"], 4), "name": "accuracy"}]})
    if results:
        meta["model-index"] = [{"name": facts.title, "results": results}]
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=100) + "---"


def _summary(facts: CardFacts, kind: str) -> str:
    what = ("LoRA adapter (peft) for" if kind == "adapter"
            else "The base model with a LoRA adapter merged into its weights:")
    names = ", ".join(f"`{n}`" for n in facts.class_names)
    data = "tweets of TweetEval's sentiment task" if facts.tweeteval else "the training files' texts"
    return (f"{what} `{facts.base_name}`, fine-tuned with sentiment_pl to answer a chat question about {data} "
            f"with exactly one word: {names}. Made by `python -m sentiment_pl export` from the run's checkpoint; "
            "every figure below comes from that run.")


def _results(facts: CardFacts) -> str:
    if not facts.results:
        return "## Results\n\nNo evaluation was recorded with this checkpoint."
    out = ["## Results"]
    for split, record in facts.results.items():
        names = record["class_names"]
        counts = [sum(row) for row in record["confusion"]]
        rows = {"**this model**": record, **trivial_baselines(counts, tuple(names))}
        out.append(f"{SPLIT_TITLES.get(split, split)} split, {record['tweets']} tweets"
                   + (f" (checkpoint at step {record['step']})" if "step" in record else "") + ":")
        head = ["", "macro-F1", "macro-recall", "accuracy", *(f"F1 {n}" for n in names)]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, m in rows.items():
            cells = [m["macro_f1"], m["macro_recall"], m["accuracy"], *m["class_f1"]]
            lines.append(f"| {name} | " + " | ".join(f"{v:.4f}" for v in cells) + " |")
        out.append("\n".join(lines))
        matrix = ["| true \\ predicted | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
        matrix += [f"| {n} | " + " | ".join(str(v) for v in row) + " |" for n, row in zip(names, record["confusion"])]
        out.append("Confusion matrix:\n\n" + "\n".join(matrix))
    out.append("macro-recall is TweetEval's official metric for this task; the uniform-random row is its "
               "expected value.")
    return "\n\n".join(out)


def _how(facts: CardFacts) -> str:
    return ("## How it classifies\n\nBy scoring the classes, not by generating text: the tweet is put in the chat "
            "template as the user turn after the system prompt below, one forward pass runs over that prompt, and "
            "the class whose answer's first token has the highest log-probability at the assistant's turn is the "
            "prediction (softmax over the classes gives their probabilities). Training put the loss on the answer "
            "tokens only (the class name and the end-of-turn token).")


def _recipe(facts: CardFacts) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in facts.recipe.items())
    return f"## Training recipe\n\n| | |\n|---|---|\n{rows}"


def _prompt(facts: CardFacts) -> str:
    system = "\n".join(f"> {line}" for line in facts.system_prompt.splitlines()) or "> (none: no system turn)"
    return f"## Prompt\n\nSystem prompt, the same for every tweet:\n\n{system}"


def _usage(facts: CardFacts, kind: str) -> str:
    if kind == "adapter":
        return ("## Usage\n\n```bash\npip install sentiment_pl   # this project\n"
                "python -m sentiment_pl classify --adapter THIS_DIRECTORY --input tweets.txt --output predictions.csv"
                "\n```\n\nOne tweet per line in `tweets.txt` (or `.csv`/`.jsonl` with `--text_column`); the base "
                f"model is loaded from `{facts.base_name}` (`--base_name` to load it from elsewhere).")
    answers = dict(zip(facts.class_names, facts.answer_ids))
    return f'''## Usage

Plain transformers, no peft and no sentiment_pl needed:

```python
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

path = "THIS_DIRECTORY"
tokenizer = AutoTokenizer.from_pretrained(path)
model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
SYSTEM = {json.dumps(facts.system_prompt)}
ANSWER_FIRST_TOKENS = {json.dumps(answers)}


def classify(tweet: str) -> dict[str, float]:
    chat = ([{{"role": "system", "content": SYSTEM}}] if SYSTEM else []) + [{{"role": "user", "content": tweet}}]
    text = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1]
    probs = logits[list(ANSWER_FIRST_TOKENS.values())].softmax(-1)
    return dict(zip(ANSWER_FIRST_TOKENS, probs.tolist()))


print(classify("I love this new phone, best purchase ever!!!"))
```'''


def _limits(facts: CardFacts) -> str:
    return ("## Limitations\n\nTrained on English tweets; TweetEval's test split has another class mix than train "
            "(32/48/19 % negative/neutral/positive against 16/45/39 %), so a model picked on validation can lean "
            "towards the classes frequent in training. A 4-bit base keeps the rounding of its quantization (a GGUF "
            "base is quantized twice: its own format, then NF4).")


def read_test_results(path: Path) -> dict[str, Any] | None:
    """The metrics `test` wrote beside a checkpoint, if it was tested."""
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    record.pop("checkpoint", None)
    record.pop("step", None)  # `test` runs at step 0 whatever the checkpoint's step: not a figure of it
    return record
