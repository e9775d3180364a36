"""The decoder layers compiled: a 576-wide model runs some 2,000 small operators a step on a CPU, each bound by
memory and dispatch rather than arithmetic (docs/performance.md), and TorchInductor fuses them into fewer,
larger kernels.

Each layer but the last is compiled on its own, with dynamic shapes: every batch has its own length (packed rows
of the shared prefix), so one graph serves every batch instead of one per length. The last layer stays eager: it is
the one `last_layer` patches to run at the read positions only. Compiling costs minutes on the first training step
and again on the first evaluation (a second graph, without gradients), which long runs earn back.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def compile_decoder_layers(backbone) -> None:
    """Compile every decoder layer of `backbone` but the last, in place (parameters and state dicts unchanged)."""
    layers = list(backbone.layers)
    for layer in layers[:-1]:
        layer.compile(dynamic=True)
    log.info("torch.compile: %d of %d decoder layers (compiled on their first call)", len(layers) - 1, len(layers))
