"""Tests for rckd.doctor."""

from __future__ import annotations

from rckd.doctor import DoctorConfig, collect_report, run_doctor


def test_report_names_libraries_and_datasets(tmp_path):
    (tmp_path / "glas").mkdir()
    report = dict(collect_report(DoctorConfig(data_root=str(tmp_path))))
    assert report["torch"] and report["timm"] and report["kornia"]
    assert not report["OpenSlide library"].startswith("unavailable")
    assert report["dataset glas"] == str(tmp_path / "glas")
    assert report["dataset bach"] == "not found"


def test_shared_data_is_found(shared_data, capsys):
    assert run_doctor(DoctorConfig(data_root=str(shared_data))) == 0
    out = capsys.readouterr().out
    for name in ("monuseg", "glas", "crchisto", "wsi"):
        line = next(l for l in out.splitlines() if l.startswith(f"dataset {name} "))
        assert "not found" not in line
