"""The shared prefix: every conversation opens with the same system turn, so it is computed once per batch.

With TinyLlama's template the system turn is 43 of a sample's ~100 tokens. Instead of running it for every
example, the decoder runs once over one packed sequence: the prefix (once), then every example's remaining real
tokens, padding left out. In each layer, attention is split: the prefix attends causally to itself; each example's
tokens attend to the prefix's keys and values (expanded over the batch, a view) and causally to their own. Nothing
is detached: the LoRA adapters on k_proj/v_proj change every step, and their gradients through the shared keys and
values are the sum over the batch, as in the unshared computation. One decoder call (not a prefix pass plus a KV-
cache pass) matters on 4-bit models: bitsandbytes dequantizes every weight once per call, forward and backward.
Positions, causality and right padding are those of the unshared rows, so the result is the unshared model's
hidden states at every position, and the loss and class scoring downstream do not change; transformers' gradient
checkpointing works unchanged, as the layout travels as a plain keyword argument.

Two places guard the split: the encoder checks that the prefix is a token prefix of every encoded example, and
`shared_prefix_hidden_states` checks every row of every batch before using it. The rest of the project calls it
through `sentiment_pl.model.fast.read_hidden_states`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from sentiment_pl.errors import InputError
from sentiment_pl.model.fast.versions import check_transformers_version
from sentiment_pl.model.precision import fp32_attention_on_cpu

ATTENTION = "sentiment_pl_shared_prefix"
# The kernels the split attention wraps: any that takes an additive 4-D mask would do; sdpa is the default one.
BASE_ATTENTION = ("sdpa",)


def use_shared_prefix_attention(model) -> None:
    """Switch a transformers model to the attention that `shared_prefix_hidden_states` needs.

    It is the model's own kernel (`sdpa`), unchanged for every ordinary call; only a forward given the
    `shared_prefix` layout splits attention into the prefix's and the rows'. On a CPU in half precision, the
    kernel computes in fp32 (`fp32_attention_on_cpu`).
    """
    check_transformers_version()
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    current = inner.config._attn_implementation
    if current.startswith(ATTENTION):
        return
    check_attention(current)
    name = f"{ATTENTION}_{current}"
    AttentionInterface.register(name, _shared_prefix_attention(fp32_attention_on_cpu(AttentionInterface()[current])))
    AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[current])
    inner.set_attn_implementation(name)


def check_attention(attn_implementation: str) -> None:
    """Refuse an attention kernel the shared prefix cannot wrap, naming the keys to change."""
    if attn_implementation not in BASE_ATTENTION:
        raise InputError(f"model.share_prefix: true needs model.base.attn_implementation in "
                         f"{list(BASE_ATTENTION)}, not {attn_implementation!r}; set model.share_prefix: false to "
                         f"use {attn_implementation!r}")


@dataclass(frozen=True)
class PackedLayout:
    """One packed sequence: the prefix once (`length` tokens), then the real tokens of `batch` rows of `rest`.

    Padding is not packed: `real` holds the slots (row * rest + position) of the rows' real tokens, in order, or is
    None when no row is padded. Projections, MLPs and norms, nearly all of a step, run on real tokens only;
    attention alone sees the rows padded again to [batch, rest] (zeros in the padded slots, which only padded
    queries ever attend to, as right padding comes after a row's real tokens).
    `rows_mask` [1, 1, rest, length + rest] (True: attend): a row's token i sees the prefix and its row up to i.
    """

    length: int
    batch: int
    rest: int
    rows_mask: torch.Tensor
    real: torch.Tensor | None = None

    @classmethod
    def of(cls, length: int, batch: int, rest: int, device: torch.device,
           real: torch.Tensor | None = None) -> PackedLayout:
        mask = torch.ones(rest, length + rest, dtype=torch.bool, device=device).tril(length)
        return cls(length, batch, rest, mask[None, None], real)

    @property
    def row_tokens(self) -> int:
        """Tokens of the rows in the packed sequence."""
        return self.batch * self.rest if self.real is None else len(self.real)

    def unpack(self, packed: torch.Tensor, dim: int) -> torch.Tensor:
        """The rows' packed tokens along `dim` -> all batch * rest slots, zeros where a row is padded."""
        if self.real is None:
            return packed
        shape = list(packed.shape)
        shape[dim] = self.batch * self.rest
        return packed.new_zeros(shape).index_copy(dim, self.real, packed)

    def pack(self, slots: torch.Tensor, dim: int) -> torch.Tensor:
        """All batch * rest slots along `dim` -> the rows' real tokens."""
        return slots if self.real is None else slots.index_select(dim, self.real)

    def token_index(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Where the tokens at (rows, columns) of the unpacked rows sit in the packed sequence; a prefix column
        maps to the one prefix token."""
        in_prefix = cols < self.length
        slots = rows * self.rest + (cols - self.length).clamp(min=0)
        # Each slot's packed index plus one, unpacked: 0 where a row is padded.
        packed = self.unpack(torch.arange(1, self.row_tokens + 1, device=slots.device), dim=0)[slots] - 1
        if self.real is not None and ((packed < 0) & ~in_prefix).any():
            raise ValueError("read positions include padding, which the packed sequence leaves out")
        return torch.where(in_prefix, cols, self.length + packed)

    def split(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[1, heads, P + N, d] -> the prefix [1, heads, P, d] and the padded rows [B, heads, S, d]."""
        # One split (its backward is one cat), not two slices (each would scatter into a zeroed full-size grad).
        prefix, rows = states.split([self.length, self.row_tokens], dim=2)
        rows = self.unpack(rows, dim=2)
        return prefix, rows[0].unflatten(1, (self.batch, self.rest)).transpose(0, 1)


def _shared_prefix_attention(base: Callable) -> Callable:
    """`base` attention, or, given a `shared_prefix` layout, attention over its packed sequence: the prefix
    attends causally to itself, every row to the prefix and causally to itself."""

    def attention(module, query, key, value, attention_mask, shared_prefix: PackedLayout | None = None, **kwargs):
        if shared_prefix is None:
            return base(module, query, key, value, attention_mask, **kwargs)
        batch, rest = shared_prefix.batch, shared_prefix.rest
        q_prefix, q_rows = shared_prefix.split(query)
        k_prefix, k_rows = shared_prefix.split(key)
        v_prefix, v_rows = shared_prefix.split(value)
        # No mask: sdpa then runs causal attention with its fastest kernel.
        prefix_out = base(module, q_prefix, k_prefix, v_prefix, None, **kwargs)[0] if shared_prefix.length else None
        # expand() is a view: the cat is the only copy, as in the unshared computation, and backward sums the
        # rows' gradients into the one prefix computation (LoRA on k_proj/v_proj learns through it).
        keys = torch.cat([k_prefix.expand(batch, -1, -1, -1), k_rows], dim=2)
        values = torch.cat([v_prefix.expand(batch, -1, -1, -1), v_rows], dim=2)
        rows_out, _ = base(module, q_rows, keys, values, shared_prefix.rows_mask, **kwargs)
        rows_out = shared_prefix.pack(rows_out.reshape(batch * rest, *rows_out.shape[2:]), dim=0)
        rows_out = rows_out[None]
        return (rows_out if prefix_out is None else torch.cat([prefix_out, rows_out], dim=1)), None

    return attention


def shared_prefix_hidden_states(backbone, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                                prefix: Sequence[int], rows: torch.Tensor, cols: torch.Tensor,
                                trimmed: bool = False) -> torch.Tensor:
    """Final hidden states [N, width] at the real tokens (rows[i], cols[i]) of right-padded rows that all start
    with `prefix`, which runs once (an empty `prefix` packs the rows alone).

    Equal, up to float rounding, to `backbone(input_ids, attention_mask).last_hidden_state[rows, cols]`,
    gradients included; padding is never computed, and reading it is refused. The decoder runs once, on one packed
    sequence: the prefix, then every row's remaining real tokens, with the positions they have in their rows.
    `trimmed`: the last layer (patched by `sentiment_pl.model.fast.last_layer`) runs in full at the read
    positions only, each of which must then be read once.
    """
    if not backbone.config._attn_implementation.startswith(ATTENTION):
        raise RuntimeError("shared_prefix_hidden_states needs use_shared_prefix_attention(model) first")
    check_rows_start_with(input_ids, attention_mask, prefix)
    length, (batch, width) = len(prefix), input_ids.shape
    rest = width - length
    is_real = attention_mask[:, length:].flatten().bool()
    # One more host-device sync (the packed length), repaid many times over by the padding not computed.
    real = is_real.nonzero().flatten()
    layout = PackedLayout.of(length, batch, rest, input_ids.device, None if len(real) == len(is_real) else real)
    positions = torch.arange(width, device=input_ids.device)
    packed = torch.cat([input_ids[0, :length], layout.pack(input_ids[:, length:].flatten(), dim=0)])[None]
    positions = torch.cat([positions[:length], layout.pack(positions[length:].repeat(batch), dim=0)])[None]
    # A 4-D mask is used as given: the shared-prefix attention builds its own, so none of [P+N]^2 is built.
    placeholder = torch.ones(1, 1, 1, 1, dtype=torch.bool, device=input_ids.device)
    read_index = layout.token_index(rows, cols)
    if trimmed:  # the last layer's output: the read tokens only, in read order
        return backbone(input_ids=packed, position_ids=positions, attention_mask=placeholder, shared_prefix=layout,
                        read_index=read_index).last_hidden_state[0]
    hidden = backbone(input_ids=packed, position_ids=positions, attention_mask=placeholder,
                      shared_prefix=layout).last_hidden_state
    return hidden[0][read_index]


def check_rows_start_with(input_ids: torch.Tensor, attention_mask: torch.Tensor, prefix: Sequence[int]) -> None:
    """Raise unless every row starts with `prefix`, unpadded, and has at least one token after it."""
    length = len(prefix)
    if input_ids.shape[1] <= length:
        raise ValueError(f"rows of {input_ids.shape[1]} tokens do not extend past the {length}-token shared "
                         "prefix; set model.share_prefix: false for such data")
    expected = torch.tensor(prefix, device=input_ids.device)
    # One host-device sync per forward: the price of failing loudly instead of training on wrong attention.
    bad = ((input_ids[:, :length] != expected) | (attention_mask[:, :length] == 0)).any(dim=1)
    if bad.any():
        rows = bad.nonzero().flatten().tolist()
        raise ValueError(f"batch rows {rows[:5]} do not start with the {length}-token shared prefix (the system "
                         "turn), or are left-padded; set model.share_prefix: false for such data")
