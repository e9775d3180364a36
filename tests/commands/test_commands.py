"""The after-training commands are reachable from `python -m sentiment_pl`, with their docstrings as `--help`."""

import pytest

from sentiment_pl.__main__ import main
from sentiment_pl.commands import NAMES, _commands


@pytest.mark.parametrize("name", NAMES)
def test_command_help_is_its_docstring(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    summary = _commands()[name].__doc__.splitlines()[0]  # the one-line summary
    assert summary in out


def test_top_level_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in NAMES) and "fit" in out
