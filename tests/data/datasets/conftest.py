"""Fake dataset trees that mirror the official layouts (tiny images, written on the fly)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _write(path: Path, size=(12, 10), value: int = 128, mode: str = "RGB", array=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if array is None:
        w, h = size
        shape = (h, w, 3) if mode == "RGB" else (h, w)
        array = np.full(shape, value, dtype=np.uint8)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def write_image():
    """``write_image(path, size=(w, h), value=.., mode='RGB'|'L', array=None) -> path``."""
    return _write


@pytest.fixture
def class_tree(tmp_path):
    """``class_tree(folders, per_class, suffix, sub='')`` -> root with ``sub/<folder>/<i>.<suffix>``."""
    def make(folders, per_class, suffix=".tif", sub="", size=(12, 10)):
        root = tmp_path / "ds"
        for c, folder in enumerate(folders):
            n = per_class[c] if isinstance(per_class, (list, tuple)) else per_class
            for i in range(n):
                _write(root / sub / folder / f"{folder}_{i:03d}{suffix}", size, value=10 * c + 5)
        return root
    return make
