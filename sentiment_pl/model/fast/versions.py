"""The transformers versions the fast paths were written for.

Both patches reach into transformers internals that change between major versions: the attention and mask
interfaces and the keyword arguments a forward passes down to its attention (`prefix`), and the Llama decoder
layer's and attention's forward (`last_layer`). They were written against transformers 5.24; within 5.x those
stayed put, and the equivalence tests (tests/model/fast) check them on the installed version.
"""

from __future__ import annotations

from sentiment_pl.errors import InputError

# pyproject.toml's pin of transformers; tests/model/fast/test_versions.py keeps the two equal.
SUPPORTED_TRANSFORMERS = ">=5.24,<6"
FAST_PATH_KEYS = ("model.share_prefix", "model.trim_last_layer")


def check_transformers_version(installed: str | None = None) -> None:
    """Refuse a transformers version outside `SUPPORTED_TRANSFORMERS`, naming the keys that turn the patches off."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    if installed is None:
        import transformers

        installed = transformers.__version__
    try:
        supported = SpecifierSet(SUPPORTED_TRANSFORMERS).contains(Version(installed), prereleases=True)
    except InvalidVersion:
        supported = False
    if not supported:
        off = " and ".join(f"{key}: false" for key in FAST_PATH_KEYS)
        raise InputError(f"transformers {installed} is installed, but the shared-prefix and trimmed-last-layer "
                         f"patches were written for transformers{SUPPORTED_TRANSFORMERS}: install such a version, "
                         f"or set {off} (whichever of the two is on) to run without them")
