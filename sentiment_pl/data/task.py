"""What the model needs to know about the task's encoding, handed from the data side to the model in one value.

The encoder is the one place that tokenizes the class answers and finds the shared system turn; the model reads
them only from here: the loss and scoring need the answers, batching of answer sequences the pad id, and the
shared-prefix forward the prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TaskEncoding:
    """The classes and how they are encoded for one tokenizer, chat template and prompt.

    Attributes:
        class_names: The classes, in class-id order.
        answers: Each class's answer token ids (the class name and the end-of-sequence token).
        prefix_ids: The system turn's token ids that every encoded example starts with (empty: none).
        pad_id: The id that pads rows (masked out; any id would do, but data and model use the same one).
    """

    class_names: tuple[str, ...]
    answers: tuple[tuple[int, ...], ...]
    prefix_ids: tuple[int, ...]
    pad_id: int

    def __post_init__(self) -> None:
        if len(self.answers) != len(self.class_names) or not all(self.answers):
            raise ValueError(f"{len(self.class_names)} classes need one non-empty answer each, got {self.answers}")

    @property
    def first_tokens_distinct(self) -> bool:
        """True when one forward pass over the prompt can tell the classes apart by their first answer token."""
        return len(set(self.first_ids)) == len(self.answers)

    @property
    def first_ids(self) -> tuple[int, ...]:
        """Each class's first answer token."""
        return tuple(a[0] for a in self.answers)

    def to_dict(self) -> dict[str, Any]:
        return {"class_names": list(self.class_names), "answers": [list(a) for a in self.answers],
                "prefix_ids": list(self.prefix_ids), "pad_id": self.pad_id}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TaskEncoding:
        """The inverse of `to_dict`; raises KeyError, TypeError or ValueError on a malformed record."""
        return cls(tuple(str(n) for n in raw["class_names"]), tuple(tuple(int(t) for t in a) for a in raw["answers"]),
                   tuple(int(t) for t in raw["prefix_ids"]), int(raw["pad_id"]))
