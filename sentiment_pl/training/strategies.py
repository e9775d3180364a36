"""DeepSpeed ZeRO-Offload for QLoRA: optimizer state on the CPU, adapter-sized checkpoints, and a form that also
runs on CPU (DeepSpeed's CPU accelerator with gloo), so the path is exercised for real without a GPU."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.strategies import DeepSpeedStrategy
from lightning.fabric.utilities.seed import reset_seed

from sentiment_pl.errors import InputError
from sentiment_pl.files import swap_directory


class ZeroOffload(DeepSpeedStrategy):
    """DeepSpeed ZeRO (stage 2 by default) with the optimizer state and step offloaded to the CPU.

    Use it with `model.optimizer: deepspeed.ops.adam.DeepSpeedCPUAdam` and a base quantized through
    `model.base.quantization: nf4` (transformers' bitsandbytes config). Checkpoints hold the trainable (adapter)
    weights, their optimizer state and the loop state, never the frozen base (DeepSpeed#6007), and are written
    to a temporary directory that replaces the previous one only when complete. On CPU it runs with DeepSpeed's
    CPU accelerator and gloo, so tests train through the real engine and the real `DeepSpeedCPUAdam`.

    Args:
        stage: ZeRO stage: 2 partitions optimizer state and gradients over ranks. 3 (parameters too) is refused
            with a 4-bit base (peft#1550).
        offload_optimizer: Keep the optimizer state on the CPU and run the optimizer step there.
        exclude_frozen_parameters: Leave the frozen base weights out of checkpoints; `configure_model` rebuilds
            them (the random-init seed or the hub weights), so a checkpoint is adapter-sized.
        pin_memory: Pin the CPU optimizer buffers (faster host-device copies; GPU only).
        logging_batch_size_per_gpu: Batch size DeepSpeed reports in its own logs. Lightning's `auto` reads it
            from the training loader, which `validate`/`test`/`predict` never build.
        kwargs: Any other `lightning.pytorch.strategies.DeepSpeedStrategy` argument.
    """

    def __init__(self, stage: int = 2, offload_optimizer: bool = True, exclude_frozen_parameters: bool = True,
                 pin_memory: bool = False, logging_batch_size_per_gpu: int = 1, **kwargs: Any) -> None:
        if stage not in (1, 2, 3):
            raise InputError(f"ZeroOffload: stage={stage}; ZeRO stages are 1, 2 or 3")
        super().__init__(stage=stage, offload_optimizer=offload_optimizer, pin_memory=pin_memory,
                         exclude_frozen_parameters=exclude_frozen_parameters,
                         logging_batch_size_per_gpu=logging_batch_size_per_gpu, **kwargs)

    # -- the three CUDA assumptions of Lightning's DeepSpeedStrategy, lifted for CPU ----------------------------

    def setup_environment(self) -> None:
        if isinstance(self.accelerator, CPUAccelerator):
            # Lightning refuses any accelerator but CUDA here; DeepSpeed itself has a CPU accelerator.
            super(DeepSpeedStrategy, self).setup_environment()
            return
        super().setup_environment()

    def setup_distributed(self) -> None:
        if self.root_device.type != "cpu":
            super().setup_distributed()
            return
        # As the parent, minus the check that device indices equal local ranks: every CPU rank is `cpu`.
        reset_seed()
        self.set_world_ranks()
        self._init_deepspeed_distributed()

    @property
    def root_device(self) -> torch.device:
        device = super().root_device
        # The DeepSpeed engine takes its device from `root_device.index` and fails on None, which a CPU has.
        return torch.device("cpu", self.local_rank) if device.type == "cpu" else device

    # -- checkpoints: written aside, then swapped in -------------------------------------------------------------

    def save_checkpoint(self, checkpoint: dict, filepath, storage_options: Any | None = None) -> None:
        """Every rank writes its shard into `<filepath>.partial`; rank zero then swaps it in for `filepath`.

        A crash during the write leaves the previous checkpoint untouched; between the two renames the previous
        one sits at `<filepath>.previous`.
        """
        final = Path(self.broadcast(str(filepath)))
        partial = final.with_name(final.name + ".partial")
        if self.is_global_zero and partial.exists():
            shutil.rmtree(partial)  # left over from a crash
        self.barrier("zero_offload_save_start")
        handle = None
        if self.exclude_frozen_parameters:
            # DeepSpeed drops frozen parameters but keeps every other state_dict entry, and bitsandbytes stores
            # each 4-bit layer's quantization state (absmax, quant_map, ...) as such entries.
            handle = self.lightning_module.register_state_dict_post_hook(_keep_trainable_only)
        try:
            super().save_checkpoint(checkpoint, partial, storage_options)
        finally:
            if handle is not None:
                handle.remove()
        self.barrier("zero_offload_save_written")
        if self.is_global_zero:
            swap_directory(partial, final)
        self.barrier("zero_offload_save_done")

    def remove_checkpoint(self, filepath) -> None:
        if self.is_global_zero and os.path.isdir(filepath):
            shutil.rmtree(filepath)


def _keep_trainable_only(module: torch.nn.Module, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    keep = {prefix + name for name, p in module.named_parameters() if p.requires_grad}
    for key in [k for k in state_dict if k.startswith(prefix) and k not in keep]:
        del state_dict[key]
