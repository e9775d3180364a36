"""The fast paths refuse a transformers version they were not written for, naming the keys that turn them off."""

import re
import tomllib

import pytest
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

from conftest import ROOT
from sentiment_pl.errors import InputError
from sentiment_pl.model.fast import install_fast_paths
from sentiment_pl.model.fast.last_layer import ReadPositionsDecoderLayer, read_positions_last_layer
from sentiment_pl.model.fast.prefix import use_shared_prefix_attention
from sentiment_pl.model.fast.versions import SUPPORTED_TRANSFORMERS, check_transformers_version

KEYS = r"model\.share_prefix: false and model\.trim_last_layer: false"


def tiny_llama():
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)
    config._attn_implementation = "sdpa"
    return LlamaForCausalLM(config)


def test_the_supported_range_is_the_pinned_one():
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"transformers{SUPPORTED_TRANSFORMERS}" in pins
    check_transformers_version()  # the installed one
    for version in ("5.24.0", "5.30.1", "5.99.0.dev0"):
        check_transformers_version(version)


@pytest.mark.parametrize("version", ["4.57.1", "6.0.0", "5.23.9"])
def test_other_transformers_versions_are_refused_naming_the_keys(monkeypatch, version):
    monkeypatch.setattr(transformers, "__version__", version)
    model = tiny_llama()
    for install in (lambda: use_shared_prefix_attention(model), lambda: read_positions_last_layer(model.model),
                    lambda: install_fast_paths(model, share_prefix=False, trim_last_layer=True)):
        with pytest.raises(InputError, match=f"transformers {re.escape(version)} is installed.*{KEYS}"):
            install()
    assert model.config._attn_implementation == "sdpa"  # nothing was patched
    assert type(model.model.layers[-1]) is not ReadPositionsDecoderLayer
    assert install_fast_paths(model, share_prefix=False, trim_last_layer=False) is False  # nothing asked for
