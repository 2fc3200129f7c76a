"""Tests for rckd.cli: help everywhere, one-line errors, config resolution."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rckd.cli import VERBS, Verb, main


def _verbs():
    for name, verb in VERBS.items():
        if isinstance(verb, Verb):
            yield [name]
        else:
            yield from ([name, action] for action in verb)


@pytest.mark.parametrize("words", list(_verbs()), ids=lambda w: " ".join(w))
def test_every_verb_has_help(words, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*words, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: rckd" in out and "--config" in out


def test_top_level_help_lists_every_verb(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name in VERBS:
        assert name in out


def test_bad_config_is_one_line_error(tmp_path, capsys):
    code = main(["doctor", "--config", str(tmp_path / "missing.yaml")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and "missing.yaml: config file not found" in err


def test_unknown_override_is_rejected(capsys):
    assert main(["doctor", "nonsense=1"]) == 2
    assert "unknown key 'nonsense'" in capsys.readouterr().err


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "rckd.cli", "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert out.startswith("rckd ")
