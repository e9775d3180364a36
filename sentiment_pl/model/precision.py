"""The compute dtype: bfloat16 where the hardware multiplies it natively, float32 where it does not.

A CPU with AVX512-BF16 or AMX runs a bf16 matrix product about ten times faster than an fp32 one; a CPU with AVX2
only emulates bf16 and runs it slower than fp32. So `model.base.dtype: auto` asks the CPU what it can do, at run
time, instead of assuming. On a GPU, `auto` is bf16 where the GPU supports it and fp16 otherwise.

On a CPU in bf16, the model computes in bf16 end to end (`CpuHalfPrecision`): frozen weights stay bf16 (peft's
k-bit preparation would upcast norms and embeddings to fp32 and leave every activation in fp32, with a cast at
each matrix product), the LoRA weights keep fp32 master copies multiplied in bf16 under autocast, and attention
runs in fp32 (see `sentiment_pl.model.fast.prefix`). The optimizer state and the loss reduction stay fp32. On a
GPU the trainer's `precision` does this job and nothing here applies.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

log = logging.getLogger(__name__)

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
DtypeName = Literal["auto", "bfloat16", "float16", "float32"]
HALF = (torch.bfloat16, torch.float16)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX tiles), detected at run time."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def cpu_description() -> str:
    """The CPU's vector capability as torch sees it, and whether it has native bf16: for logs and results."""
    capability = torch.backends.cpu.get_cpu_capability()
    return f"{capability}, {'native' if cpu_has_native_bf16() else 'no native'} bf16"


def resolve_dtype(name: DtypeName, device: torch.device | str) -> torch.dtype:
    """The dtype `name` stands for on `device`; `auto` follows what the hardware can do, and says so."""
    if name != "auto":
        return DTYPES[name]
    device = torch.device(device)
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        log.info("compute dtype %s (auto, on %s)", str(dtype).removeprefix("torch."), device)
        return dtype
    if device.type != "cpu":
        return torch.float32
    dtype = torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    log.info("compute dtype %s (auto: CPU capability %s)", str(dtype).removeprefix("torch."), cpu_description())
    return dtype


@dataclass(frozen=True)
class CpuHalfPrecision:
    """How a model computes in bf16 (or fp16) on a CPU; `enabled` is False on a GPU and in fp32."""

    dtype: torch.dtype
    enabled: bool

    @classmethod
    def of(cls, dtype: torch.dtype, device: torch.device | str) -> CpuHalfPrecision:
        return cls(dtype, torch.device(device).type == "cpu" and dtype in HALF)

    def autocast(self):
        """The context of every forward: the fp32 LoRA weights multiply in `dtype`."""
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast("cpu", dtype=self.dtype)


def fp32_attention_on_cpu(attention: Callable) -> Callable:
    """A transformers attention function that computes in fp32 on a CPU in half precision.

    PyTorch's CPU flash-attention backward in bf16 takes several times as long as in fp32 for these short
    sequences, and attention is a small share of the FLOPs: the casts cost less than they save. Under autocast
    (which would cast the inputs back to bf16) autocast is switched off for the call. Elsewhere, unchanged.
    """

    def wrapped(module, query, key, value, attention_mask, **kwargs):
        if query.device.type != "cpu" or not (query.dtype in HALF or torch.is_autocast_enabled("cpu")):
            return attention(module, query, key, value, attention_mask, **kwargs)
        if attention_mask is not None and attention_mask.is_floating_point():
            attention_mask = attention_mask.float()
        with torch.autocast("cpu", enabled=False):
            out, weights = attention(module, query.float(), key.float(), value.float(), attention_mask, **kwargs)
        return out.to(query.dtype), weights

    return wrapped
