"""Registry: names, listing, checksums, missing files, checkpoints by path."""

import dataclasses

import pytest
import torch

from rckd.io import sha256_file
from rckd.models.teachers import registry as reg
from rckd.models.teachers.registry import get_teacher
from rckd.models.teachers.unet import UNetTeacher
from rckd.models.weights import save_weights

SLIM = {"channels": [8, 16, 32, 64], "stem_width": 8}


def _checkpoint(path):
    t = UNetTeacher("resnet18", width=16, skip=4, encoder_kwargs=SLIM)
    save_weights(t.state_dict(), path, {"architecture": "unet", "teacher": t.describe()})
    return path.with_name(path.name + ".safetensors")


def test_entries_have_the_required_fields():
    entries = reg.teacher_entries()
    assert {"monuseg-unet", "classical"} <= set(entries)
    for e in entries.values():
        assert e.mpp > 0 and e.out_channels >= 1 and e.architecture and e.normalisation
    assert entries["monuseg-unet"].path.endswith(".safetensors") and len(entries["monuseg-unet"].sha256) == 64
    assert get_teacher("classical").name == "classical"


def test_device_names_resolve_like_everywhere_else():
    assert next(get_teacher("default", device="auto").parameters()).device.type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="expected auto, cpu"):
        get_teacher("classical", device="gpu")


def test_checkpoint_by_path_and_registered_name(tmp_path):
    st = _checkpoint(tmp_path / "t")
    t = get_teacher(str(st))
    assert isinstance(t, UNetTeacher) and not t.training
    assert t.response(torch.zeros(1, 3, 40, 40, dtype=torch.uint8), 0.25).shape == (1, 1, 40, 40)
    assert t.tta == 1 and get_teacher(str(st), tta=8).tta == 8
    assert t.weights_sha256 == sha256_file(st) and get_teacher("classical").weights_sha256 == ""
    with pytest.raises(ValueError, match="tta"):
        get_teacher(str(st), tta=3)
    entry = reg.register_teacher("mine", st)
    try:
        assert get_teacher("mine").name == "mine" and entry.sha256
    finally:
        reg._REGISTRY.pop("mine", None)


def test_wrong_checksum_and_missing_file(tmp_path, monkeypatch):
    st = _checkpoint(tmp_path / "t")
    entry = reg.TeacherEntry("bad", "unet", 0.5, "imagenet", 2, str(st), "0" * 64)
    monkeypatch.setitem(reg._REGISTRY, "bad", entry)
    with pytest.raises(ValueError, match="sha256 .* does not match"):
        get_teacher("bad")
    monkeypatch.setitem(reg._REGISTRY, "gone", dataclasses.replace(entry, name="gone", path=str(tmp_path / "no.safetensors")))
    with pytest.raises(FileNotFoundError, match="no.safetensors: weights of teacher 'gone' not found"):
        get_teacher("gone")
    status = dict(reg.teacher_status())
    assert "does not match" in status["bad"] and "not found" in status["gone"]
    with pytest.raises(ValueError, match="unknown teacher"):
        get_teacher("nope")


def test_tampered_checkpoint_file_is_refused(tmp_path):
    st = _checkpoint(tmp_path / "t")
    data = bytearray(st.read_bytes())
    data[-1] ^= 0xFF
    st.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        get_teacher(str(st))


def test_shipped_default_teacher():
    """The packaged fp16 weights: <= 16 MB, checksum pinned, loads as the default, finds nuclei."""
    entry = reg.teacher_entries()["monuseg-unet"]
    from pathlib import Path
    assert Path(entry.path).stat().st_size <= 16 * 2**20
    assert (Path(entry.path).parent / "MODEL_CARD.md").is_file()
    t = get_teacher("default")
    assert isinstance(t, UNetTeacher) and t.mpp == entry.mpp == 0.4 and t.out_channels == 2 and t.tta == 8
    img = torch.full((1, 3, 64, 64), 230, dtype=torch.uint8)
    img[:, 0, 24:40, 24:40], img[:, 1, 24:40, 24:40], img[:, 2, 24:40, 24:40] = 70, 40, 140  # a dark purple disc-ish blob
    r = t.response(img, 0.25)
    assert r.shape == (1, 1, 64, 64)
    assert float(r[0, 0, 28:36, 28:36].mean()) > float(r[0, 0, :8, :8].mean())


def test_edited_sidecar_of_the_shipped_teacher_is_refused(tmp_path, monkeypatch):
    """A changed mpp in the shipped JSON (weights untouched) must not be trusted."""
    import json
    import shutil
    from pathlib import Path

    entry = reg.teacher_entries()["monuseg-unet"]
    st = Path(shutil.copy(entry.path, tmp_path / "t.safetensors"))
    js = tmp_path / "t.json"
    meta = json.loads(Path(entry.path).with_suffix(".json").read_text())
    meta["teacher"]["mpp"] = 0.25
    js.write_text(json.dumps(meta))
    monkeypatch.setitem(reg._REGISTRY, "monuseg-unet", dataclasses.replace(entry, path=str(st)))
    with pytest.raises(ValueError, match=r"t\.json: sha256 .* pinned .* of teacher 'monuseg-unet'"):
        get_teacher("default")
    assert "does not match" in dict(reg.teacher_status())["monuseg-unet"]
