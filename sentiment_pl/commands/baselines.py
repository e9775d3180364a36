"""`python -m sentiment_pl baselines`: the base model without an adapter, by class scoring and by generation,
beside the trivial baselines: the "before" half of a run's story."""

from __future__ import annotations

from typing import Literal

import lightning.pytorch as pl
import torch
from torchmetrics.functional.classification import multiclass_f1_score, multiclass_recall

from sentiment_pl.commands.generation import generate_answers, parse_answer
from sentiment_pl.commands.run_config import instantiate_run
from sentiment_pl.data.sources import Split, TweetSource, TweetSplit
from sentiment_pl.training.metrics import trivial_baselines
from sentiment_pl.training.module import SentimentClassifier


class BaseOnlyClassifier(SentimentClassifier):
    """The classifier with the base model alone: no adapters, nothing trainable (zero-shot)."""

    def build_model(self, device: torch.device):
        from sentiment_pl.model.base import load_base_model

        return load_base_model(self.base, device=device)


class FirstTweets(TweetSource):
    """The first `limit` tweets of another source's split (in file order, so every class's share is kept)."""

    def __init__(self, source: TweetSource, limit: int) -> None:
        self.source, self.limit = source, limit

    def load(self, split: Split, class_names: tuple[str, ...]) -> TweetSplit:
        full = self.source.load(split, class_names)
        labels = full.sentiments[: self.limit] if full.sentiments is not None else None
        return TweetSplit(full.texts[: self.limit], labels, f"{full.origin} (first {self.limit})")


def baselines(train_config: str, split: Literal["validation", "test"] = "test", limit: int | None = None,
              generation: bool = True, max_new_tokens: int = 8, batch_size: int = 16,
              accelerator: Literal["auto", "cpu", "cuda", "mps"] = "auto") -> dict[str, dict[str, float]]:
    """Score the base model without an adapter, by class scoring and by generation, beside trivial baselines.

    Class scoring is zero-shot and works as `test` scores a trained model; generation is greedy, parsed back
    into classes (the seed's method), with the share of answers that were not exactly one class name. The
    always-majority and uniform-random rows are computed on the same tweets.

    Args:
        train_config: The training config (or a run's `config.yaml`): its base model, prompt and data.
        split: The labeled split to score.
        limit: Score only the first this many tweets (generation is slow on a CPU).
        generation: Also evaluate by generation and report how often the answer was exactly one class name.
        max_new_tokens: Longest generated answer.
        batch_size: Tweets per forward pass / generation batch.
        accelerator: Device to run on.
    """
    run = instantiate_run(train_config, {"trainer": {"logger": False}})
    data, names = run.datamodule, run.datamodule.prompt.class_names
    if limit is not None:
        data.source = FirstTweets(data.source, limit)
    data.eval_batch_size = batch_size
    module = BaseOnlyClassifier(base=run.model.base, lora=None)
    trainer = pl.Trainer(accelerator=accelerator, devices=1, precision=run.trainer.precision, logger=False,
                         enable_checkpointing=False, enable_model_summary=False)
    stage = "test" if split == "test" else "validate"
    metrics = (trainer.test if stage == "test" else trainer.validate)(module, datamodule=data, verbose=False)[0]
    prefix = "test" if stage == "test" else "val"
    targets = torch.tensor(data.raw[split].sentiments)
    results = {"class scoring (zero-shot)": {k: metrics[f"{prefix}/{k}"] for k in ("macro_f1", "macro_recall",
                                                                                    "accuracy")}}
    if generation:
        prompts = [e.input_ids[: e.prompt_length] for e in data.datasets[split].examples]
        answers = generate_answers(module.model, prompts, data.tokenizer, batch_size, max_new_tokens)
        results["greedy generation + parsing"] = generation_metrics(answers, targets, names)
    results.update(trivial_baselines(torch.bincount(targets, minlength=len(names)), names))
    print(format_baselines(results, f"{data.raw[split].origin}: {len(targets)} tweets; base model "
                                    f"{run.model.base.name}, no adapter"), flush=True)
    return results


def generation_metrics(answers: list[str], targets: torch.Tensor, names: tuple[str, ...]) -> dict[str, float]:
    """Metrics of parsed answers; an answer naming no class counts as an extra, always-wrong class."""
    parsed = [parse_answer(a, names) for a in answers]
    k = len(names)
    preds = torch.tensor([k if c is None else c for c, _ in parsed])
    f1 = multiclass_f1_score(preds, targets, num_classes=k + 1, average=None)[:k]
    recall = multiclass_recall(preds, targets, num_classes=k + 1, average=None)[:k]
    return {"macro_f1": float(f1.mean()), "macro_recall": float(recall.mean()),
            "accuracy": float((preds == targets).double().mean()),
            "not_exactly_a_class": sum(not exact for _, exact in parsed) / len(parsed),
            "no_class_found": sum(c is None for c, _ in parsed) / len(parsed)}


def format_baselines(results: dict[str, dict[str, float]], title: str) -> str:
    lines = [title, f"{'':30s} {'macro-F1':>9s} {'macro-recall':>13s} {'accuracy':>9s}"]
    for name, m in results.items():
        accuracy = m.get("accuracy", float("nan"))
        lines.append(f"{name:30s} {m['macro_f1']:9.4f} {m['macro_recall']:13.4f} {accuracy:9.4f}")
        if "not_exactly_a_class" in m:
            lines.append(f"{'':30s} answers not exactly one class name: {m['not_exactly_a_class']:.1%}; "
                         f"naming no class: {m['no_class_found']:.1%}")
    return "\n".join(lines)
