"""The classifier rebuilt from an adapter directory, for `classify`: no training config needed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from sentiment_pl.data.sources import DataError
from sentiment_pl.errors import InputError
from sentiment_pl.model.adapter import AdapterInfo
from sentiment_pl.training.module import SentimentClassifier


class AdapterClassifier(SentimentClassifier):
    """The classifier rebuilt from an adapter directory: the base model, the saved LoRA weights on top.

    Args:
        adapter: The adapter directory.
        base_name: Hub id or directory of the base model, when it is not where the adapter says.
        class_bias: Added to the class log-scores (a calibration fitted by `test --calibration.enabled true`).
    """

    def __init__(self, adapter: str, base_name: str | None = None, class_bias: list[float] | None = None) -> None:
        info = AdapterInfo.read(adapter)
        base = dataclasses.replace(info.base, name=base_name) if base_name else info.base
        super().__init__(base=base, lora=info.lora)
        self.adapter_dir, self.info = Path(adapter), info
        if class_bias is not None and len(class_bias) != len(info.prompt.class_names):
            raise InputError(f"class_bias has {len(class_bias)} values for {len(info.prompt.class_names)} classes")
        self.class_bias = class_bias

    def setup(self, stage: str) -> None:
        super().setup(stage)
        saved = self.info.task
        if saved is not None and saved != self.task:
            raise InputError(f"{self.adapter_dir}: its tokenizer and prompt encode the task differently from the "
                             f"training run that saved it ({_difference(saved, self.task)}); the adapter "
                             "directory was changed or mixed with another one")

    def class_log_probs(self, batch, hidden=None):
        scores = super().class_log_probs(batch, hidden)
        return scores if self.class_bias is None else scores + torch.tensor(self.class_bias, device=scores.device)

    def configure_model(self) -> None:
        if self.model is not None:
            return
        from peft import load_peft_weights, set_peft_model_state_dict

        super().configure_model()
        result = set_peft_model_state_dict(self.model, load_peft_weights(str(self.adapter_dir)))
        missing = [k for k in result.missing_keys if "lora_" in k]
        if result.unexpected_keys or missing:
            raise DataError(f"{self.adapter_dir}: adapter weights do not fit the base model "
                            f"(unexpected {result.unexpected_keys[:3]}, missing {missing[:3]})")


def _difference(saved, now) -> str:
    fields = [f.name for f in dataclasses.fields(saved) if getattr(saved, f.name) != getattr(now, f.name)]
    return ", ".join(f"{name}: saved {getattr(saved, name)} but now {getattr(now, name)}" for name in fields)
