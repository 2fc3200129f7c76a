"""Weight files: safetensors + JSON sidecar, written atomically, checksum verified."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from rckd.weightfile import load_weights, save_weights, weights_paths


def _module() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))


def test_round_trip_writes_both_files_and_meta(tmp_path):
    m = _module()
    path = save_weights(m, tmp_path / "ckpt", {"architecture": "toy", "step": 7})
    assert path == tmp_path / "ckpt.safetensors"
    sidecar = json.loads((tmp_path / "ckpt.json").read_text())
    assert sidecar["architecture"] == "toy" and sidecar["step"] == 7
    assert len(sidecar["sha256"]) == 64 and sidecar["num_tensors"] == len(m.state_dict())
    state, meta = load_weights(tmp_path / "ckpt")
    assert meta["step"] == 7
    for k, v in m.state_dict().items():
        assert torch.equal(state[k], v), k
    # the .safetensors or .json path works as well as the stem
    assert set(load_weights(path)[0]) == set(state)
    assert set(load_weights(tmp_path / "ckpt.json")[0]) == set(state)
    assert not list(tmp_path.glob("*.tmp"))


def test_tied_weights_are_saved(tmp_path):
    a = nn.Linear(3, 3)
    b = nn.Linear(3, 3)
    b.weight = a.weight
    state, _ = load_weights(save_weights(nn.ModuleDict({"a": a, "b": b}), tmp_path / "t", {}))
    assert torch.equal(state["a.weight"], state["b.weight"])


def test_corrupt_file_fails_checksum(tmp_path):
    path = save_weights(_module(), tmp_path / "ckpt", {})
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        load_weights(path)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere"):
        load_weights(tmp_path / "nothere")
    save_weights(_module(), tmp_path / "ckpt", {})
    (tmp_path / "ckpt.json").unlink()
    with pytest.raises(FileNotFoundError, match="ckpt.json"):
        load_weights(tmp_path / "ckpt")


def test_weights_paths(tmp_path):
    assert weights_paths(tmp_path / "a.safetensors") == (tmp_path / "a.safetensors", tmp_path / "a.json")
    assert weights_paths(tmp_path / "a") == weights_paths(tmp_path / "a.json")
