"""The shared prefix: every conversation opens with the same system turn, so it is computed once per batch.

With TinyLlama's template the system turn is 43 of a sample's ~100 tokens. Instead of running it for every
example, the decoder runs it once (batch dimension 1); its keys and values, expanded over the batch without a copy,
become the KV cache that every example's remaining tokens attend to. Nothing is detached: the LoRA adapters on
k_proj/v_proj change every step, and their gradients through the shared keys and values are the sum over the
batch, as in the unshared computation. The result is the unshared model's hidden states at every position,
so the loss and class scoring downstream do not change at all.

Two places guard the split: the encoder checks that the prefix is a token prefix of every encoded example, and
`shared_prefix_hidden_states` checks every row of every batch before using it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from sentiment_pl.prompts import PromptSpec

# Tweets chosen to start with what could merge with the template's tokens before them (newline, space,
# punctuation, a mention, an emoji): the prefix stops before any token they change.
PROBE_TWEETS = ("probe tweet", "\nnew line", " leading space", "!!", "@user 12", "\U0001F600 ok", "<|user|>")

GRADIENT_CHECKPOINTING_CONFLICT = (
    "model.share_prefix: true cannot be combined with model.base.gradient_checkpointing: true: transformers' "
    "checkpointed decoder layers drop the KV cache in training, so the examples would not attend to the shared "
    "prefix at all. Set model.share_prefix: false to use gradient checkpointing.")


def common_prefix(sequences: Sequence[Sequence[int]]) -> tuple[int, ...]:
    """The longest token sequence that starts every one of `sequences`."""
    first = sequences[0]
    length = len(first)
    for other in sequences[1:]:
        length = min(length, len(other))
        length = next((i for i in range(length) if other[i] != first[i]), length)
    return tuple(first[:length])


def system_turn_prefix(render: Callable[[list[dict[str, str]], bool], list[int]],
                       prompt: PromptSpec) -> tuple[int, ...]:
    """The token ids of the system turn that open every prompt; empty when there is no system turn.

    `render(chat, add_generation_prompt)` tokenizes a chat with the chat template. The prefix is the system turn
    rendered alone, cut back to what it has in common with the prompts of the probe tweets: a tokenizer that
    merged the system turn's last tokens with the next turn's first cannot yield a prefix that real prompts do
    not start with.
    """
    if not prompt.system_prompt:
        return ()
    system = render(prompt.messages(PROBE_TWEETS[0])[:1], False)
    return common_prefix([system] + [render(prompt.messages(t), True) for t in PROBE_TWEETS])


def shared_prefix_hidden_states(backbone, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                                prefix: Sequence[int]) -> torch.Tensor:
    """Final hidden states [batch, T, width] of right-padded rows that all start with `prefix`, which runs once.

    Equal, up to float rounding, to `backbone(input_ids, attention_mask).last_hidden_state`, gradients included.
    """
    from transformers import DynamicCache

    batch, length = input_ids.shape[0], len(prefix)
    check_rows_start_with(input_ids, attention_mask, prefix)
    head = backbone(input_ids=input_ids[:1, :length], use_cache=True)
    # expand() is a view: each layer's cat() with the suffix keys/values is the only copy, as in the unshared
    # computation, and backward sums the batch's gradients into the one prefix computation.
    cache = DynamicCache([(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v, *_ in head.cache],
                         config=backbone.config)
    # The 2-D mask covers prefix + suffix; positions continue from the cache's length, as in the full rows.
    tail = backbone(input_ids=input_ids[:, length:], attention_mask=attention_mask, cache=cache, use_cache=True)
    return torch.cat([head.last_hidden_state.expand(batch, -1, -1), tail.last_hidden_state], dim=1)


def check_rows_start_with(input_ids: torch.Tensor, attention_mask: torch.Tensor, prefix: Sequence[int]) -> None:
    """Raise unless every row starts with `prefix`, unpadded, and has at least one token after it."""
    length = len(prefix)
    if input_ids.shape[1] <= length:
        raise ValueError(f"rows of {input_ids.shape[1]} tokens do not extend past the {length}-token shared prefix")
    expected = torch.tensor(prefix, device=input_ids.device)
    # One host-device sync per forward: the price of failing loudly instead of training on wrong attention.
    bad = ((input_ids[:, :length] != expected) | (attention_mask[:, :length] == 0)).any(dim=1)
    if bad.any():
        rows = bad.nonzero().flatten().tolist()
        raise ValueError(f"batch rows {rows[:5]} do not start with the {length}-token shared prefix (the system "
                         "turn), or are left-padded; set model.share_prefix: false for such data")
