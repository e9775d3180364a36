"""Two patches of the transformers Llama forward that compute the same results for less: the shared
system-turn prefix run once per batch (`prefix`), and the last decoder layer run only where it is read
(`last_layer`).

The rest of the project meets them here only: `install_fast_paths` patches a model (refusing a transformers
version the patches were not written for, `versions`), and `read_hidden_states` is the one forward, returning the
final hidden states at the positions asked for and nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sentiment_pl.model.base import backbone_and_head
from sentiment_pl.model.fast.last_layer import ReadPositionsDecoderLayer, read_positions_last_layer
from sentiment_pl.model.fast.prefix import shared_prefix_hidden_states, use_shared_prefix_attention


def install_fast_paths(model, share_prefix: bool, trim_last_layer: bool) -> bool:
    """Patch `model` for the fast paths asked for; True when its last layer now runs at read positions only
    (Llama's), which `read_hidden_states` is then told with `trimmed`."""
    if share_prefix:
        use_shared_prefix_attention(model)
    return trim_last_layer and read_positions_last_layer(backbone_and_head(model)[0])


def read_hidden_states(backbone, input_ids: torch.Tensor, attention_mask: torch.Tensor, rows: torch.Tensor,
                       cols: torch.Tensor, prefix_ids: Sequence[int] | None, trimmed: bool) -> torch.Tensor:
    """The final hidden states [N, width] of right-padded rows `input_ids` [batch, T] at the positions
    (rows[i], cols[i]), in that order; each position at most once (a trimmed layer's gradients count a repeated
    one twice), none of them padding.

    `prefix_ids`: the prefix every row starts with, run once for the batch, rows packed without their padding
    (empty: rows packed, nothing shared); None: the rows run as they are. `trimmed`: the last layer runs at the
    read positions only (`read_positions_last_layer(backbone)` must have patched it). Every combination gives the
    plain `backbone(input_ids, attention_mask).last_hidden_state[rows, cols]`, up to float rounding, gradients
    included.
    """
    if trimmed and not isinstance(backbone.layers[backbone.config.num_hidden_layers - 1], ReadPositionsDecoderLayer):
        raise RuntimeError("trimmed=True needs read_positions_last_layer(backbone) first")
    if prefix_ids is not None:
        return shared_prefix_hidden_states(backbone, input_ids, attention_mask, prefix_ids, rows, cols, trimmed)
    if not trimmed:
        return backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[rows, cols]
    read_index = rows * input_ids.shape[1] + cols
    return backbone(input_ids=input_ids, attention_mask=attention_mask, read_index=read_index).last_hidden_state[0]


def union_positions(shape: torch.Size, *positions: tuple[torch.Tensor, torch.Tensor]
                    ) -> tuple[tuple[torch.Tensor, torch.Tensor], list[torch.Tensor]]:
    """The union of sets of (rows, columns) in a [batch, T] grid, each position once, in row-major order, and
    for each set where its positions sit in the union: one read of the union serves every set."""
    wanted = torch.zeros(shape[:2], dtype=torch.bool, device=positions[0][0].device)
    for rows, cols in positions:
        wanted[rows, cols] = True
    union = wanted.nonzero(as_tuple=True)
    rank = wanted.flatten().cumsum(0).view(shape[:2]) - 1  # a position's index in the union
    return union, [rank[rows, cols] for rows, cols in positions]
