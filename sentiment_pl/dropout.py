"""Dropout for training from scratch: on the residual stream (Llama-style decoders have none), and on the tweet's
tokens."""

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


def drop_tweet_tokens(input_ids: torch.Tensor, prompt_lengths: torch.Tensor, margins: tuple[int, int], p: float,
                      unk_id: int) -> torch.Tensor:
    """Replace each tweet token by `unk_id` with probability `p` (word dropout), in a copy of `input_ids`.

    The tweet of row i spans positions `[head, prompt_lengths[i] - tail)` with `margins = (head, tail)`: the
    template's turns around it, the system turn and the answer are never touched, so the loss still reads the
    same positions. Why: a model trained from scratch memorises the rare tokens of its training tweets (the
    embedding table is most of its weights); hiding some of them at random makes it read the rest.
    """
    head, tail = margins
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)
    in_tweet = (positions >= head) & (positions < prompt_lengths.to(input_ids.device)[:, None] - tail)
    drop = in_tweet & (torch.rand(input_ids.shape, device=input_ids.device) < p)
    return input_ids.masked_fill(drop, unk_id)
