"""The task in words: class names, the system prompt and the chat messages. No torch here."""

from __future__ import annotations

from dataclasses import dataclass

from sentiment_pl.errors import InputError

CLASS_NAMES: tuple[str, ...] = ("negative", "neutral", "positive")

SYSTEM_PROMPT = (
    "You are a sentiment classifier. Read the tweet and decide whether its sentiment is negative, "
    "neutral or positive. Answer with exactly one word: negative, neutral or positive."
)


@dataclass(frozen=True)
class PromptSpec:
    """How a tweet becomes a conversation.

    Args:
        system_prompt: The system turn; the same for every example. Empty string: no system turn.
        class_names: The answer for each class id, in id order (0, 1, 2, ...).
    """

    system_prompt: str = SYSTEM_PROMPT
    class_names: tuple[str, ...] = CLASS_NAMES

    def __post_init__(self) -> None:
        names = tuple(self.class_names)
        object.__setattr__(self, "class_names", names)
        if len(names) < 2:
            raise InputError(f"data.prompt.class_names needs at least two classes, got {list(names)}")
        if len(set(names)) != len(names) or any(not n.strip() for n in names):
            raise InputError(f"data.prompt.class_names must be distinct and non-empty, got {list(names)}")

    def messages(self, tweet: str, sentiment: int | None = None) -> list[dict[str, str]]:
        """The chat for one tweet; with `sentiment`, the class name is the assistant's answer."""
        chat = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        chat.append({"role": "user", "content": tweet})
        if sentiment is not None:
            chat.append({"role": "assistant", "content": self.class_names[sentiment]})
        return chat
