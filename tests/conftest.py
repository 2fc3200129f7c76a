"""Shared fixtures: the real data beside the project, skipped with a reason when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (see rckd/__init__.py)

SHARED_DATA = Path(os.environ.get("RCKD_SHARED_DATA",
                                  Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def shared_path(*parts: str) -> Path:
    """Path under ../shared/data, or skip the test naming what is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set RCKD_SHARED_DATA or place ../shared/data)")
    return path


@pytest.fixture
def shared_data() -> Path:
    """The root of ../shared/data (skips when absent)."""
    return shared_path()


@pytest.fixture(autouse=True)
def _few_threads(monkeypatch):
    """Keep torch to the machine's cores so parallel test runs do not oversubscribe."""
    import torch
    torch.set_num_threads(min(2, os.cpu_count() or 1))
