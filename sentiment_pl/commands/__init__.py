"""The commands beyond LightningCLI's fit/validate/test/predict, each a typed function whose docstring is its
`--help`: `python -m sentiment_pl {classify,export,inspect,baselines} --help`."""

from __future__ import annotations


def _commands() -> dict:
    from sentiment_pl.commands.baselines import baselines
    from sentiment_pl.commands.classify import classify
    from sentiment_pl.commands.export import export
    from sentiment_pl.commands.inspection import inspect

    return {"classify": classify, "export": export, "inspect": inspect, "baselines": baselines}


NAMES = ("classify", "export", "inspect", "baselines")


def run(args: list[str]) -> None:
    from jsonargparse import auto_cli

    from sentiment_pl.quiet import configure_logging

    configure_logging()
    auto_cli(_commands(), args=args, as_positional=False)  # bad input: `__main__` prints it in one line
