"""Combinations of settings known to fail (most of them QLoRA under DeepSpeed), refused when the config is parsed,
each with what to use instead. Checked on the parsed config, before any class is instantiated or any model is
loaded."""

from __future__ import annotations

from typing import Any

CPU_ADAM = "deepspeed.ops.adam.DeepSpeedCPUAdam"


class IncompatibleSettings(ValueError):
    """A combination of config values that is known to fail; the message says what to use instead."""


def _get(node: Any, *keys: str) -> Any:
    for key in keys:
        if node is None:
            return None
        node = node.get(key) if isinstance(node, dict) else getattr(node, key, None)
    return node


def _class_and_args(node: Any) -> tuple[str, Any]:
    """(class name, init args) of a `class_path`/`init_args` value, a registry string, or an instance."""
    if node is None or isinstance(node, (str, bool)):
        return str(node or ""), {}
    if _get(node, "class_path") is not None:
        return str(_get(node, "class_path")), _get(node, "init_args") or {}
    return type(node).__module__ + "." + type(node).__qualname__, node


def deepspeed_settings(strategy: Any) -> dict[str, Any] | None:
    """ZeRO stage and optimizer offload of a DeepSpeed strategy value; None for any other strategy."""
    name, args = _class_and_args(strategy)
    if "deepspeed" not in name.lower() and "zerooffload" not in name.lower():
        return None
    if isinstance(strategy, str):  # Lightning's registry names: deepspeed_stage_2_offload, ...
        stage = 3 if "stage_3" in name else 1 if "stage_1" in name else 2
        return {"stage": stage, "offload_optimizer": "offload" in name}
    offload = _get(args, "offload_optimizer")
    default_offload = "zerooffload" in name.lower()
    return {"stage": _get(args, "stage") or 2, "offload_optimizer": default_offload if offload is None else offload}


def check_combination(config: Any) -> None:
    """Raise IncompatibleSettings for the first known-bad combination in a parsed `fit`/`validate`/... config."""
    trainer, model = _get(config, "trainer") or {}, _get(config, "model") or {}
    if _get(trainer, "enable_checkpointing") is False:
        # Lightning would only fail later, at Trainer construction, naming neither key.
        raise IncompatibleSettings(
            "trainer.enable_checkpointing=false: every run keeps its best and last checkpoints (checkpoint.* and "
            "last_checkpoint.*), which resuming and `test --ckpt_path best` rely on; keep it true and point "
            "trainer.default_root_dir or trainer.logger at a scratch directory instead")
    quantized = _get(model, "base", "quantization") not in (None, "none")
    optimizer, _ = _class_and_args(_get(model, "optimizer"))
    plugins = _get(trainer, "plugins")
    plugins = plugins if isinstance(plugins, list) else [plugins] if plugins else []
    bnb_plugin = any("bitsandbytes" in _class_and_args(p)[0].lower() for p in plugins)
    ds = deepspeed_settings(_get(trainer, "strategy"))
    if ds is None:
        if optimizer == CPU_ADAM and str(_get(trainer, "accelerator")) not in ("cpu",):
            raise IncompatibleSettings(
                f"model.optimizer={CPU_ADAM} steps parameters on the CPU; with trainer.accelerator="
                f"{_get(trainer, 'accelerator')} use trainer.strategy: sentiment_pl.training.strategies.ZeroOffload "
                "(it offloads the optimizer to the CPU) or a torch optimizer such as torch.optim.AdamW")
        return
    if ds["stage"] == 3 and quantized:
        raise IncompatibleSettings(
            "trainer.strategy: ZeRO stage 3 shards parameters, which 4-bit bitsandbytes weights do not support "
            f"(model.base.quantization={_get(model, 'base', 'quantization')}; peft#1550); use stage: 2")
    if ds["offload_optimizer"] and optimizer != CPU_ADAM:
        raise IncompatibleSettings(
            f"trainer.strategy offloads the optimizer to the CPU, but model.optimizer={optimizer or '(none)'}; "
            f"DeepSpeed refuses a torch optimizer there (DeepSpeed#2971): use {CPU_ADAM}")
    if bnb_plugin:
        raise IncompatibleSettings(
            "trainer.plugins: Lightning's bitsandbytes precision plugin does not work with DeepSpeed; remove it "
            "and quantize through transformers with model.base.quantization: nf4")
    if _get(trainer, "gradient_clip_algorithm") == "value":
        raise IncompatibleSettings(
            "trainer.gradient_clip_algorithm=value: DeepSpeed clips gradients by norm only; use "
            "gradient_clip_algorithm: norm (with trainer.gradient_clip_val)")
