"""Reading weights for the models: foreign formats without pickle, key prefixes, bad files."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rckd.models.weights import detect_prefix, read_state_dict, save_weights


def _module() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))


def test_read_state_dict_foreign_formats(tmp_path):
    m = _module()
    sd = m.state_dict()
    torch.save({"state_dict": sd, "epoch": 3}, tmp_path / "x.pth")
    state, meta = read_state_dict(tmp_path / "x.pth")
    assert meta == {} and set(state) == set(sd)
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "y.safetensors"))
    state, meta = read_state_dict(tmp_path / "y.safetensors")
    assert meta == {} and torch.equal(state["0.weight"], sd["0.weight"])
    with pytest.raises(FileNotFoundError):
        read_state_dict(tmp_path / "z.pth")


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"model": _module()}, tmp_path / "pickled.pth")
    with pytest.raises(ValueError, match="pickled.pth"):
        read_state_dict(tmp_path / "pickled.pth")


def test_our_checkpoints_read_with_their_sidecar(tmp_path):
    path = save_weights(_module(), tmp_path / "ours", {"arch": "x"})
    state, meta = read_state_dict(path)
    assert meta["arch"] == "x" and set(state) == set(_module().state_dict())


def test_prefix_detection():
    target = {"conv.weight", "conv.bias", "fc.weight"}
    keys = ["student.backbone.model.conv.weight", "student.backbone.model.conv.bias", "decoder.x.weight"]
    assert detect_prefix(keys, target) == "student.backbone.model."
    assert detect_prefix(["conv.weight", "fc.weight"], target) == ""


def test_a_bad_safetensors_file_without_sidecar_is_one_line(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    with pytest.raises(ValueError) as exc:
        read_state_dict(bad)
    assert str(exc.value).startswith(f"{bad}: not a readable safetensors file") and "\n" not in str(exc.value)
