"""The system turn every prompt opens with, as token ids: what the shared prefix computes once per batch.

Finding it is a tokenization question (which tokens the chat template and tokenizer give every prompt alike),
so it lives with the encoder; the model's packed attention (`sentiment_pl.model.fast.prefix`) only uses the
result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sentiment_pl.data.prompts import PromptSpec

# Tweets chosen to start with what could merge with the template's tokens before them (newline, space,
# punctuation, a mention, an emoji): the prefix stops before any token they change.
PROBE_TWEETS = ("probe tweet", "\nnew line", " leading space", "!!", "@user 12", "\U0001F600 ok", "<|user|>")


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
