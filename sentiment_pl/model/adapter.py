"""Adapter directories: everything needed to classify without the training config.

A directory holds the peft adapter (`adapter_config.json`, `adapter_model.safetensors`), the tokenizer with its
chat template, and `sentiment_pl.json`: the base model spec, LoRA settings, prompt, maximum length and the task's
encoding (classes, answer ids, shared prefix, pad id; absent in older directories), which the tokenizer and prompt
must reproduce on loading. Loading one needs only the directory and, optionally, another name or path for the same
base model.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from sentiment_pl.data.prompts import PromptSpec
from sentiment_pl.data.sources import DataError
from sentiment_pl.data.task import TaskEncoding
from sentiment_pl.errors import InputError
from sentiment_pl.files import atomic_directory
from sentiment_pl.model.base import BaseModelSpec, LoraSettings

INFO_FILE = "sentiment_pl.json"
CARD_FILE = "README.md"


@dataclass(frozen=True)
class AdapterInfo:
    """How the adapter was trained: enough to rebuild the model and encode tweets as in training."""

    base: BaseModelSpec
    lora: LoraSettings
    prompt: PromptSpec
    max_length: int
    # How the tokenizer and prompt encoded the task in training; None in directories written before it was kept.
    task: TaskEncoding | None = None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, ensure_ascii=False)

    @classmethod
    def read(cls, directory: str | Path) -> AdapterInfo:
        path = Path(directory) / INFO_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return cls(BaseModelSpec(**raw["base"]),
                       LoraSettings(**{**raw["lora"], "target_modules": tuple(raw["lora"]["target_modules"])}),
                       PromptSpec(**raw["prompt"]), int(raw["max_length"]),
                       TaskEncoding.from_dict(raw["task"]) if raw.get("task") is not None else None)
        except FileNotFoundError as err:
            raise DataError(f"{directory} is not an adapter directory: no {INFO_FILE} (make one with "
                            "`python -m sentiment_pl export`)") from err
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{path}: malformed ({err})") from err


def save_adapter(module, tokenizer, prompt: PromptSpec, max_length: int, task: TaskEncoding, directory: str | Path,
                 card: str | None = None) -> Path:
    """Write the adapter directory of `module` (a trained `SentimentClassifier`: its `model`, `base` and `lora`),
    with `card` as its README.md; it appears complete or not at all (written beside, then renamed). `task`: what
    `tokenizer`, `prompt` and `max_length` encode (the data module's `task`)."""
    if module.lora is None:
        raise InputError("the model was trained without adapters (model.lora: null); export the merged model")
    info = AdapterInfo(module.base, module.lora, prompt, max_length, task)
    with atomic_directory(directory) as tmp:
        module.model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / INFO_FILE).write_text(info.to_json(), encoding="utf-8")
        if card is not None:  # in place of peft's empty template
            (tmp / CARD_FILE).write_text(card, encoding="utf-8")
        else:
            (tmp / CARD_FILE).unlink(missing_ok=True)  # peft's "[More Information Needed]" says nothing
    return Path(directory)


def merge_adapter(adapter: str | Path, directory: str | Path, base_name: str | None = None,
                  card: str | None = None) -> Path:
    """A standalone transformers model: the base (dequantized if 4-bit) with the adapter merged into its weights.

    The 4-bit weights are dequantized to the compute dtype, which is what the 4-bit layers multiply with, so the
    merged model computes what base + adapter computed, up to float rounding of the merged sum.
    """
    from peft import PeftModel
    from transformers import AutoTokenizer

    from sentiment_pl.model.base import load_base_model

    info = AdapterInfo.read(adapter)
    spec = dataclasses.replace(info.base, name=base_name) if base_name else info.base
    base = load_base_model(spec)
    if spec.quantization != "none":
        base = base.dequantize()
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    merged.config.use_cache = True  # training switched it off; generation wants it back
    with atomic_directory(directory) as tmp:
        merged.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(str(adapter)).save_pretrained(tmp)  # with its chat template
        (tmp / INFO_FILE).write_text(json.dumps({"prompt": dataclasses.asdict(info.prompt),
                                                 "max_length": info.max_length}, indent=2), encoding="utf-8")
        if card is not None:
            (tmp / CARD_FILE).write_text(card, encoding="utf-8")
    return Path(directory)
