"""Residual dropout for Llama-style decoders, which have none: a regularizer for training from scratch."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def add_residual_dropout(model: nn.Module, p: float) -> list[torch.utils.hooks.RemovableHandle]:
    """Drop out the token embeddings and each attention and MLP output before it joins the residual stream.

    That is where GPT-2 and BERT put their dropout; Llama's architecture keeps only `attention_dropout`. Forward
    hooks leave the weights, the checkpoints and every evaluation (modules in eval mode) exactly as they were.
    Called on the bare causal LM, before any adapters wrap it; the hooks stay on its modules under peft.
    (For the one-layer quality recipe, p=0.1 slowed learning more than it curbed overfitting; see the README.)
    """
    if p == 0:
        return []
    targets = [model.get_input_embeddings()]
    for layer in model.get_decoder().layers:
        targets += [layer.self_attn, layer.mlp]

    def drop(module: nn.Module, _inputs, output):
        if not module.training:
            return output
        if isinstance(output, tuple):  # attention returns (output, attention weights)
            return (F.dropout(output[0], p, training=True), *output[1:])
        return F.dropout(output, p, training=True)

    return [target.register_forward_hook(drop) for target in targets]
