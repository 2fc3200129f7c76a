"""Tests for rckd.io: atomic writes and safe names."""

from __future__ import annotations

import pytest

from rckd.io import atomic_path, read_json, safe_name, sha256_file, stale_temporaries, write_json


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def test_a_killed_writers_temporary_is_found(tmp_path):
    target = tmp_path / "out.h5"
    with atomic_path(target) as tmp:  # as if the process were killed here: the file stays
        tmp.write_bytes(b"partial")
        found = stale_temporaries(target)
    assert found == [tmp] and stale_temporaries(tmp_path / "other.h5") == []


def test_json_round_trip_and_checksum(tmp_path):
    path = write_json(tmp_path / "a" / "r.json", {"x": 1})
    assert read_json(path) == {"x": 1}
    assert len(sha256_file(path)) == 64
    path.write_text("{broken")
    with pytest.raises(ValueError, match="r.json: not valid JSON"):
        read_json(path)


@pytest.mark.parametrize("name,expected", [("../../etc/passwd", "passwd"),
                                           ("test3-DAPI-2-(387).ndpi", "test3-DAPI-2-(387).ndpi"),
                                           ("a b/c d.svs", "c_d.svs")])
def test_safe_name_never_escapes(name, expected):
    assert safe_name(name) == expected


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_outputs_honour_the_umask(tmp_path, umask, mode):
    import os

    import torch

    from rckd.weightfile import save_weights

    old = os.umask(umask)
    try:
        path = write_json(tmp_path / f"u{umask:o}.json", {"x": 1})
        weights = save_weights({"w": torch.zeros(2)}, tmp_path / f"w{umask:o}")  # safetensors recreates its file
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode
    assert weights.stat().st_mode & 0o777 == mode
