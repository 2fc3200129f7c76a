"""The data root: $RCKD_DATA, else a folder fixed by the checkout, never by the current directory."""

from __future__ import annotations

from pathlib import Path

import rckd
from rckd.paths import data_root


def test_rckd_data_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("RCKD_DATA", str(tmp_path))
    assert data_root() == tmp_path.resolve()


def test_default_does_not_depend_on_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("RCKD_DATA", raising=False)
    first = data_root()
    monkeypatch.chdir(tmp_path)
    assert data_root() == first and first.is_absolute()
    assert first == Path(rckd.__file__).resolve().parents[2] / "shared" / "data"


def test_commands_default_to_it(monkeypatch, tmp_path):
    from rckd.doctor import DoctorConfig
    from rckd.grid import ReproduceConfig
    from rckd.teacher.evaluate import TeacherEvalConfig

    monkeypatch.setenv("RCKD_DATA", str(tmp_path))
    assert DoctorConfig().data_root == ReproduceConfig().data_root == str(tmp_path.resolve())
    assert TeacherEvalConfig().data == str(tmp_path.resolve() / "monuseg" / "train")
