"""`python -m sentiment_pl export`: a finished run's checkpoint as an adapter directory and a merged model, each
with a model card (`README.md`) written from the run's own figures."""

from __future__ import annotations

from pathlib import Path

import yaml

from sentiment_pl.commands.card_facts import gather_facts
from sentiment_pl.commands.model_card import model_card
from sentiment_pl.commands.run_config import instantiate_run
from sentiment_pl.errors import InputError
from sentiment_pl.model.adapter import merge_adapter, save_adapter
from sentiment_pl.training.checkpointing import load_checkpoint


def export(train_config: str, ckpt_path: str, output: str, merge: bool = True, base_name: str | None = None,
           base_model_id: str | None = None) -> Path:
    """Save a checkpoint's adapter, and the base model with the adapter merged in, as standalone directories.

    `OUTPUT/adapter` holds the peft adapter, the tokenizer with its chat template and the prompt settings:
    `classify` needs nothing else (and the base model). `OUTPUT/merged` is a plain transformers model (4-bit
    bases are dequantized before merging), loadable with `AutoModelForCausalLM.from_pretrained` without peft.
    Each gets a model card, `README.md`, with the checkpoint's validation figures and, when `test` was run on
    this checkpoint (it leaves `<checkpoint>.test.json` beside it), the test figures.

    Args:
        train_config: The training config, or the `config.yaml` the run saved beside its logs.
        ckpt_path: The checkpoint to export, e.g. `runs/sentiment/version_0/checkpoints/last.ckpt`.
        output: Directory to write `adapter/` and `merged/` into.
        merge: Also write the merged model.
        base_name: Load the base weights for merging from here instead of the config's `model.base.name`.
        base_model_id: The base model's hub id for the card's metadata, when `model.base.name` is a path.
    """
    run = instantiate_run(train_config, {"trainer": {"logger": False}})
    module, data = run.model, run.datamodule
    checkpoint = load_checkpoint(ckpt_path)
    data.load_tokenizer()
    module.configure_model()
    module.on_load_checkpoint(checkpoint)  # names the missing weights when the config does not fit
    unexpected = module.load_state_dict(checkpoint["state_dict"], strict=False).unexpected_keys
    if unexpected:
        raise InputError(f"{ckpt_path} holds weights the config's model lacks, e.g. {unexpected[:3]}")
    config = yaml.safe_load(Path(train_config).read_text(encoding="utf-8"))
    facts = gather_facts(module, data, config, checkpoint, Path(ckpt_path), base_model_id)
    adapter = save_adapter(module, data.tokenizer, data.prompt, data.max_length, data.task,
                           Path(output) / "adapter", card=model_card(facts, "adapter"))
    print(f"adapter: {adapter} ({_size(adapter)})", flush=True)
    if merge:
        merged = merge_adapter(adapter, Path(output) / "merged", base_name, card=model_card(facts, "merged"))
        print(f"merged model: {merged} ({_size(merged)})", flush=True)
    return Path(output)


def _size(directory: Path) -> str:
    total = sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())
    return f"{total / 2**20:.1f} MiB"
