"""The project's one error for bad user input: every command prints it as one line and exits non-zero.

Anything else that escapes a command is a bug and keeps its traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """The user's input (a data file, a config value, a path) is at fault; the message names it."""
