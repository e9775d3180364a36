"""A quiet terminal: what dependencies print that is about themselves, not about the user's run, is left out.

Each entry names one message. Lightning's warnings about the run (too few optimizer steps, a missing
validation, ...) and every warning of this project stay.
"""

from __future__ import annotations

import logging
import warnings

# (category, message regex): deprecations inside dependencies, and notices about things that are as intended.
IGNORED_WARNINGS = (
    (Warning, r".*isinstance\(treespec, LeafSpec\)"),  # lightning's own use of a torch API
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated"),  # peft calling transformers
    # peft, saving an adapter of a base that came from a GGUF file or our quantizing round trip: no config.json
    (UserWarning, r"Could not find a config file in .* - will assume that the vocabulary was not modified"),
    # the data loaders run in the main process on purpose: encoded tweets are in memory, batching is cheap
    (UserWarning, r".*does not have many workers which may be a bottleneck"),
    (UserWarning, r"LightningCLI's args parameter is intended to run from within Python"),
    # on two ranks: the epoch metrics are reduced over the ranks by torchmetrics before they are logged
    (UserWarning, r"It is recommended to use `self.log\('(val|test)/(accuracy|macro_f1|macro_recall|f1_\w+)'"),
)
# (logger, message start): lines logged at INFO or WARNING that only advertise or explain a dependency.
IGNORED_LOGS = (
    ("lightning.pytorch.utilities.rank_zero", "💡 Tip:"),
    ("bitsandbytes.backends.cpu.ops", "Failed to load CPU gemm_4bit_forward from kernels-community"),
    # a GGUF base is dequantized and quantized again to NF4: the packed GGUF kernels it warns about never run
    ("transformers.quantizers.quantizer_gguf", "Loading a GGUF checkpoint with its weights packed"),
)


class _DropStart(logging.Filter):
    def __init__(self, start: str) -> None:
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(self.start)


def quiet_dependencies() -> None:
    """Install the filters (idempotent)."""
    for category, message in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name, start in IGNORED_LOGS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropStart) and f.start == start for f in logger.filters):
            logger.addFilter(_DropStart(start))


def configure_logging() -> None:
    """Our own INFO lines, everyone's warnings, and none of the dependencies' notices about themselves."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    logging.getLogger("sentiment_pl").setLevel(logging.INFO)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        # Lightning adds a handler of its own when it is imported before ours exists: every line twice.
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    quiet_dependencies()
