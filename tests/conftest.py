"""Shared fixtures: the real data root (skipped with a reason when absent), the quick demo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (see rckd/__init__.py)

from rckd.paths import data_root  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def shared_path(*parts: str) -> Path:
    """Path under the data root (``$RCKD_DATA``, see :mod:`rckd.paths`), or skip naming what is missing."""
    path = data_root().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set RCKD_DATA to the data root)")
    return path


@pytest.fixture
def shared_data() -> Path:
    """The data root (skips when absent)."""
    return shared_path()


def rckd_command() -> list[str]:
    """The installed ``rckd`` console script beside this Python, else ``python -m rckd.cli``."""
    script = Path(sys.executable).parent / "rckd"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "rckd.cli"]


def run_rckd(*args: str, cwd: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``rckd ARGS`` through the real entry point in a fresh process, as a user would (this
    checkout first on the path)."""
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               **(env or {})}
    return subprocess.run([*rckd_command(), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=environ)


@pytest.fixture(scope="session")
def quick_demo(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """``rckd demo --quick`` as the README runs it (default options, no --device), once per session:
    its working directory (outputs under ``runs/demo``) and the finished process."""
    cwd = tmp_path_factory.mktemp("demo")
    proc = run_rckd("demo", "--quick", cwd=cwd)
    return cwd, proc


@pytest.fixture(autouse=True)
def _few_threads(monkeypatch):
    """Keep torch to the machine's cores so parallel test runs do not oversubscribe."""
    import torch
    torch.set_num_threads(min(2, os.cpu_count() or 1))
