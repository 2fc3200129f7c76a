"""README.md runs as written: its commands through the real entry point, its Python blocks as code."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO, run_rckd

README = (REPO / "README.md").read_text()

# Lines of the bash blocks that are not rckd commands, and why this suite does not run them.
NOT_RUN = {
    "python3 -m venv .venv && . .venv/bin/activate": "installation (CI installs from scratch: .ci/run)",
    'pip install -c constraints.txt -e ".[test]"': "installation (CI installs from scratch: .ci/run)",
    "python -m pytest -q": "this test suite itself",
}
# The demo runs in its quick form here (same code path, smaller sizes); see the quick_demo fixture.
QUICK = {"rckd demo": ["demo", "--quick"]}


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", README, flags=re.S | re.M)


def _commands() -> list[str]:
    lines = [line.split("#")[0].strip() for block in _blocks("bash") for line in block.splitlines()]
    return [line for line in lines if line]


def test_every_bash_line_is_run_or_known_not_to_be():
    rckd = [c for c in _commands() if c.startswith("rckd ")]
    assert rckd, "the README shows no rckd command"
    assert set(_commands()) - set(rckd) == set(NOT_RUN), "a README command is neither run here nor listed"


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c in _commands() if c.startswith("rckd ")])
def test_rckd_commands_run_with_their_default_options(command, quick_demo, tmp_path):
    if command in QUICK:
        cwd, proc = quick_demo  # `rckd demo --quick`, no --device: the default device is used
        assert QUICK[command] == ["demo", "--quick"]
    else:
        proc = run_rckd(*command.split()[1:], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_python_blocks_run(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(_blocks("python")[index], f"README.md python block {index + 1}", "exec"), {})
