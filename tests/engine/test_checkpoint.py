"""Checkpoint files that cannot be trusted are refused with one line naming them."""

from __future__ import annotations

import pickle

import pytest
import torch

from rckd.engine.checkpoint import read_resume, save_checkpoint, load_checkpoint


class Evil:
    def __reduce__(self):
        return (print, ("pickle ran code",))


def _checkpoint(tmp_path):
    return save_checkpoint(tmp_path, 3, {"w": torch.ones(2)}, {"optimizer": {}, "rng": []}, {"config": {}})


def test_a_sound_checkpoint_loads(tmp_path):
    state, meta, resume = load_checkpoint(_checkpoint(tmp_path))
    assert meta["step"] == resume["step"] == 3 and torch.equal(state["w"], torch.ones(2))


def test_truncated_resume_file(tmp_path):
    resume = _checkpoint(tmp_path) / "resume.pt"
    resume.write_bytes(resume.read_bytes()[:40])
    with pytest.raises(ValueError) as exc:
        load_checkpoint(resume.parent)
    msg = str(exc.value)
    assert msg.startswith(f"{resume}: cannot read the training state") and "\n" not in msg


def test_resume_file_that_needs_pickle_is_never_unpickled(tmp_path, capsys):
    path = tmp_path / "resume.pt"
    torch.save({"step": 1, "x": Evil()}, path)
    with pytest.raises(ValueError, match="cannot read the training state") as exc:
        read_resume(path)
    assert "\n" not in str(exc.value) and "pickle ran code" not in capsys.readouterr().out
    path.write_bytes(pickle.dumps([1, 2], protocol=2))
    with pytest.raises(ValueError, match="resume.pt: "):
        read_resume(path)
