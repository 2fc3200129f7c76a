"""Cached teacher responses must match the pool they are served with."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from rckd.pretrain.cache import CachedResponses
from rckd.pretrain.pools import build_pool


def test_responses_of_another_tile_size_are_refused(tmp_path):
    with h5py.File(tmp_path / "cache.h5", "w") as h:
        h["responses"] = np.zeros((8, 64, 64), np.uint8)
    with pytest.raises(ValueError, match=r"cache.h5: responses of 64x64 px for tiles served at 32x32 px"):
        CachedResponses(build_pool("synthetic", 32, 0.5, 8), tmp_path / "cache.h5")
    assert len(CachedResponses(build_pool("synthetic", 64, 0.5, 8), tmp_path / "cache.h5")) == 8
