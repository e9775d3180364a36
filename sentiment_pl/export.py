"""`python -m sentiment_pl export`: a finished run's checkpoint as an adapter directory and a merged model."""

from __future__ import annotations

from pathlib import Path

import torch

from sentiment_pl.adapter import merge_adapter, save_adapter
from sentiment_pl.run_config import instantiate_run


def export(train_config: str, ckpt_path: str, output: str, merge: bool = True, base_name: str | None = None) -> Path:
    """Save a checkpoint's adapter, and the base model with the adapter merged in, as standalone directories.

    `OUTPUT/adapter` holds the peft adapter, the tokenizer with its chat template and the prompt settings:
    `classify` needs nothing else (and the base model). `OUTPUT/merged` is a plain transformers model (4-bit
    bases are dequantized before merging), loadable with `AutoModelForCausalLM.from_pretrained` without peft.

    Args:
        train_config: The training config, or the `config.yaml` the run saved beside its logs.
        ckpt_path: The checkpoint to export, e.g. `runs/sentiment/version_0/checkpoints/last.ckpt`.
        output: Directory to write `adapter/` and `merged/` into.
        merge: Also write the merged model.
        base_name: Load the base weights for merging from here instead of the config's `model.base.name`.
    """
    run = instantiate_run(train_config, {"trainer": {"logger": False}})
    module, data = run.model, run.datamodule
    data.load_tokenizer()
    module.configure_model()
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    module.on_load_checkpoint(checkpoint)  # names the missing weights when the config does not fit
    unexpected = module.load_state_dict(checkpoint["state_dict"], strict=False).unexpected_keys
    if unexpected:
        raise KeyError(f"{ckpt_path} holds weights the config's model lacks, e.g. {unexpected[:3]}")
    adapter = save_adapter(module, data.tokenizer, data.prompt, data.max_length, Path(output) / "adapter")
    print(f"adapter: {adapter} ({_size(adapter)})", flush=True)
    if merge:
        merged = merge_adapter(adapter, Path(output) / "merged", base_name)
        print(f"merged model: {merged} ({_size(merged)})", flush=True)
    return Path(output)


def _size(directory: Path) -> str:
    total = sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())
    return f"{total / 2**20:.1f} MiB"
