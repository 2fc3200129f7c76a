"""Shipped pretrained backbones: registry, checksums of weights and sidecar, the timm route."""

from __future__ import annotations

import dataclasses
import json

import pytest
import timm
import torch

import rckd  # noqa: F401  (registers CSAT in timm)
from rckd.models import create_backbone, list_pretrained
from rckd.models import pretrained as pt
from rckd.models.weights import save_weights, to_half
from rckd.io import sha256_file


@pytest.fixture
def fake_entry(tmp_path, monkeypatch):
    """A csat_tiny 'student' exported to a temp folder and registered as csat_tiny.test."""
    torch.manual_seed(0)
    student = create_backbone("csat_tiny")
    st = save_weights(to_half(student.export_state_dict()), tmp_path / "csat_tiny_test",
                      {"arch": "csat_tiny", "kind": "backbone", "mpp": 1.0})
    monkeypatch.setattr(pt, "WEIGHTS_DIR", tmp_path)
    entry = pt.PretrainedEntry("csat_tiny.test", "csat_tiny", "csat_tiny_test", sha256_file(st),
                               sha256_file(st.with_suffix(".json")), 1.0, 128, "test student")
    monkeypatch.setitem(pt.PRETRAINED, entry.name, entry)
    return entry, student


def test_registry_entry_builds_the_backbone_with_its_weights(fake_entry):
    entry, student = fake_entry
    assert "csat_tiny.test" in list_pretrained() and list_pretrained("csat_tiny") == ["csat_tiny.test"]
    b = create_backbone("csat_tiny.test")
    assert b.name == "csat_tiny" and b.pretrained == "csat_tiny.test"
    for k, v in student.export_state_dict().items():
        assert torch.equal(b.export_state_dict()[k], v.half().to(v.dtype)), k
    x = torch.rand(2, 3, 64, 64)
    assert b(x).shape == (2, b.num_features)
    random_init = create_backbone("csat_tiny")
    assert random_init.pretrained is None
    assert not torch.equal(random_init.export_state_dict()["stem.0.weight"], b.export_state_dict()["stem.0.weight"])


def test_tampered_weights_or_sidecar_are_refused(fake_entry):
    entry, _ = fake_entry
    data = bytearray(entry.path.read_bytes())
    data[-1] ^= 0xFF
    entry.path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"csat_tiny_test\.safetensors: sha256 .* pinned"):
        create_backbone("csat_tiny.test")
    data[-1] ^= 0xFF
    entry.path.write_bytes(bytes(data))  # weights restored, now the sidecar claims another mpp
    js = entry.path.with_suffix(".json")
    meta = json.loads(js.read_text())
    js.write_text(json.dumps({**meta, "mpp": 0.25}))
    with pytest.raises(ValueError, match=r"csat_tiny_test\.json: sha256 .* pinned"):
        create_backbone("csat_tiny.test")


def test_unknown_pretrained_name_and_missing_file(fake_entry, monkeypatch):
    entry, _ = fake_entry
    with pytest.raises(ValueError, match="no pretrained backbone 'csat.nope'"):
        pt.pretrained_file("csat.nope")
    monkeypatch.setitem(pt.PRETRAINED, "csat_tiny.gone", dataclasses.replace(entry, name="csat_tiny.gone", stem="gone"))
    with pytest.raises(FileNotFoundError, match="gone.safetensors: file of pretrained backbone"):
        create_backbone("csat_tiny.gone")
    with pytest.raises(ValueError, match="shipped pretrained backbone"):
        create_backbone("csat_tiny.test", weights=str(entry.path))


def test_export_student_halves_weights_and_keeps_the_run_meta(tmp_path):
    torch.manual_seed(0)
    b = create_backbone("csat_tiny")
    run = save_weights(b, tmp_path / "run" / "backbone", {"arch": "csat_tiny", "mpp": 1.0, "method": "rckd"})
    path, sha, side = pt.export_student(run, "csat_tiny_x", {"pool": "test pool"}, folder=tmp_path / "w")
    assert sha == sha256_file(path) and side == sha256_file(path.with_suffix(".json"))
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["mpp"] == 1.0 and meta["method"] == "rckd" and meta["pool"] == "test pool"
    assert meta["dtype"] == "float16" and path.stat().st_size < run.stat().st_size * 0.6
    again = create_backbone("csat_tiny", weights=path)
    for k, v in b.export_state_dict().items():
        assert torch.allclose(again.export_state_dict()[k], v, atol=1e-2, rtol=1e-2), k


def test_shipped_students_are_listed_and_build_offline():
    names = list_pretrained()
    assert {"csat.rckd_he5k", "resnet18.rckd_he5k"} <= set(names)
    for name in names:
        e = pt.pretrained_entry(name)
        b = create_backbone(name)
        assert b.name == e.arch and b.pretrained == name
        meta = json.loads(e.path.with_suffix(".json").read_text())
        assert meta["mpp"] == e.mpp and meta["method"] == "rckd" and meta["dtype"] == "float16"
        assert (e.path.parent / meta["model_card"]).is_file()
        with torch.no_grad():
            assert b(torch.rand(1, 3, e.input_size, e.input_size)).shape == (1, b.num_features)
        assert not torch.equal(b.export_state_dict()[next(iter(b.export_state_dict()))],
                               create_backbone(e.arch).export_state_dict()[next(iter(b.export_state_dict()))])


def test_shipped_csat_through_timm_has_the_same_weights():
    model = timm.create_model("csat.rckd_he5k", pretrained=True, num_classes=4)
    ref = create_backbone("csat.rckd_he5k").export_state_dict()
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in ref.items() if not k.startswith("head.fc."))
    assert model(torch.rand(2, 3, 128, 128)).shape == (2, 4)
    assert timm.create_model("csat", pretrained=True).pretrained_cfg["tag"] == "rckd_he5k"


def test_timm_route_refuses_a_tampered_shipped_file(monkeypatch, tmp_path):
    import shutil

    e = pt.pretrained_entry("csat.rckd_he5k")
    for suffix in (".safetensors", ".json"):
        shutil.copy(e.path.with_suffix(suffix), tmp_path / f"{e.stem}{suffix}")
    js = tmp_path / f"{e.stem}.json"
    js.write_text(js.read_text().replace('"mpp": 1.0', '"mpp": 0.5'))
    monkeypatch.setattr(pt, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(ValueError, match=r"csat_rckd_he5k\.json: sha256 .* pinned"):
        timm.create_model("csat.rckd_he5k", pretrained=True, num_classes=4)
