"""`python -m sentiment_pl COMMAND`: LightningCLI's fit/validate/test/predict, plus the after-training commands.

An error in the user's input (a data file, a config value, a path: `InputError`) is printed as one line and
exits with status 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from sentiment_pl.errors import InputError

    try:
        _run(argv)
    except InputError as err:
        raise SystemExit(f"error: {err}") from None


def _run(argv: list[str] | None) -> None:
    given = argv
    argv = sys.argv[1:] if argv is None else list(argv)
    from sentiment_pl import commands

    if argv and argv[0] in commands.NAMES:
        commands.run(argv)
        return
    if not argv or argv[0] in ("-h", "--help"):
        print(f"after training: python -m sentiment_pl {{{','.join(commands.NAMES)}}} --help\n")
    from sentiment_pl.cli import main as lightning_main

    lightning_main(given)  # None: LightningCLI reads sys.argv itself


if __name__ == "__main__":
    main()
