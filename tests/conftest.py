"""Shared assets (the real tokenizer and TweetEval files) and tiny in-process models for the tests.

The assets live in `../shared` beside the project, or wherever SENTIMENT_PL_SHARED points. Without them the
tests that need them skip with the reason, except under CI (CI=true), where a missing asset is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SENTIMENT_PL_SHARED", ROOT.parent / "shared"))
TOKENIZER_DIR = SHARED / "models" / "TinyLlama-1.1B-Chat-v1.0"
TWEETEVAL_DIR = SHARED / "data" / "tweet_eval" / "sentiment"
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


def _require(path: Path) -> Path:
    if not path.exists():
        message = f"shared asset {path} not found; set SENTIMENT_PL_SHARED to the folder holding models/ and data/"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
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
def tweets(tweeteval_dir):
    from sentiment_pl.prompts import CLASS_NAMES
    from sentiment_pl.sources import TweetEvalFolder

    return TweetEvalFolder(str(tweeteval_dir)).load("validation", CLASS_NAMES)


@pytest.fixture(scope="session")
def cpu_adam():
    """DeepSpeed's CPU Adam op, compiled once (about a minute) and cached under ~/.cache/torch_extensions, where
    CI keeps it between runs; DeepSpeed's own loader reuses the build."""
    from deepspeed.ops.op_builder import CPUAdamBuilder

    return CPUAdamBuilder().load()
