"""The base model: load it (hub id, directory or GGUF file), quantize it with bitsandbytes, add LoRA with peft."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from sentiment_pl.errors import InputError
from sentiment_pl.locate import DEFAULT_MODEL, locate
from sentiment_pl.model.precision import CpuHalfPrecision, DtypeName, resolve_dtype

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoraSettings:
    """LoRA adapters (peft).

    Args:
        r: Rank of the update matrices.
        alpha: Scaling numerator; the update is scaled by alpha / r.
        dropout: Dropout on the adapter input.
        target_modules: Names of the linear layers that get adapters.
    """

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("k_proj", "v_proj")


@dataclass(frozen=True)
class BaseModelSpec:
    """The causal LM under the adapters.

    Args:
        name: Hub id, local directory or GGUF file of the model (config, and weights unless `random_init`);
            `package:NAME/FILE.gguf` is a GGUF file inside an installed Python package. A GGUF base is
            dequantized on load, then quantized again by `quantization` (twice-quantized weights: the GGUF
            format's own rounding stays in them).
        random_init: Build the architecture from its config with random weights instead of loading weights
            (offline tests, benchmarks, from-scratch training).
        architecture: Config fields to override, e.g. `{hidden_size: 256, num_hidden_layers: 4}`.
        init_seed: Seed of the random weights; fixed, so a checkpoint without base weights can rebuild them.
        quantization: `nf4`: 4-bit NormalFloat with double quantization (QLoRA); `none`: weights in `dtype`.
        dtype: Dtype of the unquantized weights and of the computation; `auto`: bfloat16 on a CPU that
            multiplies it natively (AVX512-BF16, AMX) and on a GPU that supports it, else float32 on a CPU and
            float16 on a GPU. The trainable weights and the optimizer state stay float32.
        gradient_checkpointing: Recompute activations in backward (non-reentrant) to save memory.
        attn_implementation: transformers attention kernel (`sdpa`, `eager`, `flash_attention_2`).
    """

    name: str = DEFAULT_MODEL
    random_init: bool = False
    architecture: dict[str, Any] = field(default_factory=dict)
    init_seed: int = 0
    quantization: Literal["nf4", "none"] = "nf4"
    dtype: DtypeName = "auto"
    gradient_checkpointing: bool = False
    attn_implementation: str = "sdpa"


def load_base_model(spec: BaseModelSpec, device: torch.device | str = "cpu"):
    """The base model on `device`, quantized if asked; every parameter frozen."""
    from transformers import AutoModelForCausalLM

    location = locate(spec.name)  # once: for a GGUF file that reads its header and looks the package up
    config = location.config(**spec.architecture)
    resized = {"hidden_size", "num_attention_heads"} & set(spec.architecture)
    if resized and "head_dim" not in spec.architecture and hasattr(config, "head_dim"):
        # The config computed head_dim from the original sizes before the overrides were applied.
        config.head_dim = config.hidden_size // config.num_attention_heads
    dtype = resolve_dtype(spec.dtype, device)
    kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": spec.attn_implementation}
    if spec.quantization == "nf4":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype)
        # Each rank places its quantized copy on its own device (accelerate#1515, trl#722).
        kwargs["device_map"] = {"": torch.device(device)}
    if spec.random_init:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.init_seed)
            model = AutoModelForCausalLM.from_config(config, dtype=dtype,
                                                     attn_implementation=spec.attn_implementation)
    elif location.gguf_file:
        # transformers refuses a GGUF file together with a BitsAndBytesConfig: dequantize first, quantize below.
        model = AutoModelForCausalLM.from_pretrained(location.path, gguf_file=location.gguf_file, config=config,
                                                     dtype=dtype, attn_implementation=spec.attn_implementation)
        _forget_gguf_quantization(model)
    else:
        model = AutoModelForCausalLM.from_pretrained(location.path, config=config, **kwargs)
    if spec.quantization == "nf4" and (spec.random_init or location.gguf_file):
        model = _quantize_through_disk(model, kwargs)
    model.config.use_cache = False  # training and scoring never reuse a KV cache
    model.requires_grad_(False)
    if spec.quantization == "nf4":
        _keep_cpu_weights_trainable(model)
    return model


def _forget_gguf_quantization(model) -> None:
    """A GGUF-loaded model holds float weights but keeps the GGUF quantizer, which refuses `save_pretrained`."""
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def _quantize_through_disk(model, kwargs: dict[str, Any]):
    """transformers quantizes while it loads weights, so in-memory float weights (random, or dequantized from a
    GGUF file) take a round trip through a temporary directory. Written by hand, not with save_pretrained: under
    torch.distributed that writes on rank 0 only, and every rank rebuilds the model from its own directory."""
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM

    with tempfile.TemporaryDirectory(prefix="sentiment_pl_quantize_") as tmp:
        model.config.save_pretrained(tmp)
        save_model(model, f"{tmp}/model.safetensors", metadata={"format": "pt"})
        del model
        return AutoModelForCausalLM.from_pretrained(tmp, **kwargs)


def _keep_cpu_weights_trainable(model) -> None:
    """Stop bitsandbytes from repacking 4-bit weights for CPU inference.

    On a CPU with AVX512-BF16, the first forward in eval mode repacks each Linear4bit's weight into an
    inference-only layout, and every later forward, in training too, then runs a kernel with no autograd: the
    gradient through the frozen 4-bit layers is silently wrong, so adapters below them stop learning after the
    first validation. Keeping the trainable layout costs some CPU inference speed and nothing on a GPU.
    """
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False


def add_adapters(model, spec: BaseModelSpec, lora: LoraSettings | None):
    """Wrap with LoRA (only adapters train) or, with `lora=None`, make every weight trainable (full training)."""
    checkpointing = {"use_reentrant": False}  # reentrant checkpointing loses k-bit input grads (transformers#21381)
    if lora is None:
        if spec.quantization != "none":
            raise InputError("full training (model.lora: null) needs model.base.quantization: none; "
                             "4-bit weights cannot be trained")
        model.requires_grad_(True)
        if spec.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpointing)
        return model
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    # peft's k-bit preparation upcasts every frozen non-4-bit weight to fp32, which on a CPU in bf16 keeps every
    # activation in fp32 and puts a cast before each matrix product; there the frozen weights stay as loaded.
    if spec.quantization != "none" and not CpuHalfPrecision.of(model.dtype, model.device).enabled:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=spec.gradient_checkpointing,
                                                gradient_checkpointing_kwargs=checkpointing)
    elif spec.gradient_checkpointing:  # what the k-bit preparation does, but the upcast
        model.enable_input_require_grads()
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpointing)
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=list(lora.target_modules), bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def backbone_and_head(model):
    """The decoder stack (ids -> final hidden states) and the output layer of a (peft-wrapped) causal LM.

    LoRA layers are injected in place, so calling the inner decoder runs the adapters too.
    """
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inner.get_decoder(), inner.get_output_embeddings()


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts; 4-bit weights count as their logical size."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = 0
    for p in model.parameters():
        shape = getattr(getattr(p, "quant_state", None), "shape", None)
        total += shape.numel() if shape is not None else p.numel()
    return trainable, total
