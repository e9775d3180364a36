"""The last decoder layer, run in full only at the positions that are read.

The loss reads the final hidden state at the 2-3 answer positions of each example, class scoring at one. Every
earlier layer is needed at every position, because later positions attend to earlier ones. The last layer's output
feeds only the output layer, so at the other positions only its keys and values are needed. Its query, attention
output projection and MLP (98 % of a Llama layer's weights) run at the read positions alone. With TinyLlama's 22
layers that saves about 4 % of a training step, in the forward, the gradient-checkpointing recompute and the
backward alike (measured: 1.1B steps 8 % faster, the tiny 4-layer benchmark 1.13x).

It is done by swapping the last layer's classes for the Llama subclasses below. Parameters, their names, state
dicts, peft's adapters and transformers' gradient checkpointing (which wraps subclasses too) are untouched. A
forward without `read_index` runs the parent's code unchanged. Other architectures keep their full last layer.

`read_index`, the keyword argument the decoder passes down to its layers: the flat indices of the read tokens in
the decoder's input flattened to one sequence (row * T + column of padded rows, or indices into the shared
prefix's packed sequence), each once.
"""

from __future__ import annotations

import logging

import torch
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.llama.modeling_llama import (LlamaAttention, LlamaDecoderLayer, apply_rotary_pos_emb,
                                                      eager_attention_forward)

from sentiment_pl.model.fast.versions import check_transformers_version

log = logging.getLogger(__name__)


class ReadPositionsAttention(LlamaAttention):
    """Llama attention that, given `read_index`, returns its output at those tokens only: [1, R, width]."""

    def forward(self, hidden_states: torch.Tensor, position_embeddings: tuple[torch.Tensor, torch.Tensor],
                attention_mask: torch.Tensor | None = None, cache=None, read_index: torch.Tensor | None = None,
                **kwargs) -> tuple[torch.Tensor, torch.Tensor | None]:
        if read_index is None:
            return super().forward(hidden_states, position_embeddings, attention_mask, cache=cache, **kwargs)
        if cache is not None:
            raise ValueError("read_index cannot be used with a KV cache: the cache needs every position's output")
        rows, length = hidden_states.shape[:2]
        shape = (rows, length, -1, self.head_dim)
        keys = self.k_proj(hidden_states).view(shape).transpose(1, 2)
        values = self.v_proj(hidden_states).view(shape).transpose(1, 2)
        read_queries = self.q_proj(hidden_states.flatten(0, 1)[read_index])
        # Zero queries elsewhere keep attention one call of the model's own kernel (shared-prefix split included):
        # its cost is a sliver of the projections it saves.
        queries = read_queries.new_zeros(rows * length, read_queries.shape[-1])
        queries = queries.index_copy(0, read_index, read_queries).view(shape).transpose(1, 2)
        cos, sin = position_embeddings
        queries, keys = apply_rotary_pos_emb(queries, keys, cos, sin)
        attention = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager_attention_forward)
        output, weights = attention(self, queries, keys, values, attention_mask,
                                    dropout=self.attention_dropout if self.training else 0.0, scaling=self.scaling,
                                    **kwargs)
        output = output.reshape(rows * length, -1)[read_index]
        return self.o_proj(output)[None], weights


class ReadPositionsDecoderLayer(LlamaDecoderLayer):
    """A Llama decoder layer that, given `read_index` (flat indices into its input's tokens), returns its output
    at those tokens only, [1, R, width]; keys and values still come from every position."""

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, cache=None, use_cache: bool | None = False,
                position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
                read_index: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        if read_index is None:
            return super().forward(hidden_states, attention_mask=attention_mask, position_ids=position_ids,
                                   cache=cache, use_cache=use_cache, position_embeddings=position_embeddings,
                                   **kwargs)
        residual = hidden_states.flatten(0, 1)[read_index][None]
        attended, _ = self.self_attn(hidden_states=self.input_layernorm(hidden_states),
                                     position_embeddings=position_embeddings, attention_mask=attention_mask,
                                     cache=cache, read_index=read_index, **kwargs)
        hidden = residual + attended
        return hidden + self.mlp(self.post_attention_layernorm(hidden))


def read_positions_last_layer(backbone) -> bool:
    """Let the last layer of `backbone` (a Llama decoder stack) run at read positions only; False, changing
    nothing, for layers of other architectures."""
    layer = backbone.layers[backbone.config.num_hidden_layers - 1]
    if isinstance(layer, ReadPositionsDecoderLayer):
        return True
    if type(layer) is not LlamaDecoderLayer or type(layer.self_attn) is not LlamaAttention:
        log.info("the last decoder layer (%s) runs at every position: the read-positions form is Llama's only",
                 type(layer).__name__)
        return False
    check_transformers_version()
    layer.__class__ = ReadPositionsDecoderLayer
    layer.self_attn.__class__ = ReadPositionsAttention
    return True
