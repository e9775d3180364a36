"""What a model card states, gathered from a finished run: its checkpoint, its config and its data module."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from sentiment_pl.commands.model_card import CardFacts, read_test_results
from sentiment_pl.locate import ModelLocation, locate
from sentiment_pl.training.module import VALIDATION_KEY
from sentiment_pl.training.report import test_results_path

log = logging.getLogger(__name__)

TWEETEVAL_SOURCES = ("HubTweetEval", "TweetEvalFolder")


def gather_facts(module, data, config: dict[str, Any], checkpoint: dict[str, Any], ckpt_path: Path,
                 base_model_id: str | None) -> CardFacts:
    """The card's facts: the validation figures the checkpoint holds, the test figures beside it, the recipe."""
    results = {}
    if checkpoint.get(VALIDATION_KEY):
        results["validation"] = checkpoint[VALIDATION_KEY]
    tested = read_test_results(test_results_path(ckpt_path))
    if tested is not None:
        results["test"] = tested
    location = locate(module.base.name)
    hub_id = module.base.name if not location.gguf_file and not Path(location.path).is_dir() else None
    base_model_id = base_model_id or hub_id
    return CardFacts(
        title=f"Tweet sentiment classifier on {Path(base_model_id or module.base.name).name.removesuffix('.gguf')}",
        base_name=module.base.name, base_model_id=base_model_id,
        license=base_license(location), class_names=data.prompt.class_names,
        system_prompt=data.prompt.system_prompt, answer_ids=data.task.first_ids,
        recipe=recipe(module, data, config, checkpoint), results=results,
        tweeteval=type(data.source).__name__ in TWEETEVAL_SOURCES)


def recipe(module, data, config: dict[str, Any], checkpoint: dict[str, Any]) -> dict[str, str]:
    """The training settings, as rows of the card's recipe table."""
    trainer = config.get("trainer") or {}
    accumulate = trainer.get("accumulate_grad_batches", 1)
    devices, nodes = trainer.get("devices", 1), trainer.get("num_nodes", 1)
    world = len(devices) if isinstance(devices, list) else devices
    steps = int(checkpoint.get("global_step", 0))
    rows = {"base model": f"`{module.base.name}`", "quantization": _quantization(module.base)}
    lora = module.lora
    rows["adapters"] = (f"LoRA r={lora.r}, alpha={lora.alpha}, dropout {lora.dropout} on "
                        f"{', '.join(lora.target_modules)}" if lora else "none (every weight trained)")
    rows["loss"] = "cross-entropy on the answer tokens only" + (
        f", class weights {module.class_weights}" if module.class_weights is not None else "")
    if isinstance(world, int) and isinstance(nodes, int):
        per_step = data.batch_size * accumulate * world * nodes
        rows["samples per optimizer step"] = (f"{per_step} (batch {data.batch_size} x accumulation {accumulate} x "
                                              f"{world * nodes} device(s))")
        rows["optimizer steps"] = str(steps)
        rows["training tweets seen"] = f"{steps * per_step:,}" + _epochs(data, steps * per_step)
    else:
        rows["optimizer steps"] = str(steps)
    optimizer = (config.get("model") or {}).get("optimizer") or {}
    if isinstance(optimizer, dict) and optimizer.get("class_path"):
        given = _non_defaults(optimizer["class_path"], optimizer.get("init_args") or {})
        args = ", ".join(f"{k} {v}" for k, v in given.items())
        rows["optimizer"] = f"`{optimizer['class_path']}`" + (f" ({args})" if args else "")
    rows["learning-rate schedule"] = f"{module.lr_schedule}, warm-up {module.warmup_ratio:.0%} of the steps"
    rows["precision"] = str(trainer.get("precision", "32-true"))
    rows["max length"] = f"{data.max_length} tokens (tweets truncated, never the answer)"
    return rows


def _non_defaults(class_path: str, init_args: dict[str, Any]) -> dict[str, Any]:
    """The arguments a saved config gives that differ from the class's own defaults (a run's saved config lists
    every one), and always the learning rate."""
    import importlib
    import inspect

    module, _, name = class_path.rpartition(".")
    try:
        defaults = {k: p.default for k, p in inspect.signature(getattr(importlib.import_module(module), name))
                    .parameters.items()}
    except (ImportError, AttributeError, ValueError, TypeError):
        return init_args
    def same(a: Any, b: Any) -> bool:  # YAML gives lists where signatures hold tuples
        return tuple(a) == tuple(b) if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) else a == b

    return {k: v for k, v in init_args.items()
            if k == "lr" or not same(defaults.get(k, inspect.Parameter.empty), v)}


def _quantization(base) -> str:
    dtype = base.dtype if base.dtype != "auto" else "bfloat16 or float32 (`auto`: bfloat16 where the hardware has it)"
    if base.quantization == "nf4":
        return f"NF4 4-bit (bitsandbytes, double quantization), compute in {dtype}"
    return f"none ({dtype} weights)"


def _epochs(data, seen: int) -> str:
    try:
        train = len(data.source.load("train", data.prompt.class_names))
    except Exception as err:  # the card is still right without it; say why it is missing
        log.info("model card: the train split's size is unknown (%s)", err)
        return ""
    return f" ({seen / train:.2f} epochs of {train:,})"


def base_license(location: ModelLocation) -> str:
    """The base model's license as its files state it: a GGUF file's `general.license`, a directory's README
    front matter; `other` when nothing says (a hub id offline)."""
    try:
        if location.gguf_file:
            from gguf import GGUFReader

            field = GGUFReader(Path(location.path) / location.gguf_file).fields.get("general.license")
            return str(field.contents()) if field is not None else "other"
        readme = Path(location.path) / "README.md"
        if readme.is_file():
            text = readme.read_text(encoding="utf-8")
            if text.startswith("---"):
                meta = yaml.safe_load(text.split("---", 2)[1]) or {}
                return str(meta.get("license", "other"))
    except (OSError, ValueError, yaml.YAMLError) as err:
        log.info("model card: could not read the base model's license (%s)", err)
    return "other"
