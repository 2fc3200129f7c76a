"""Tests for rckd.doctor."""

from __future__ import annotations

from rckd.doctor import DoctorConfig, collect_report


def test_report_names_libraries_and_datasets(tmp_path):
    (tmp_path / "glas").mkdir()
    report = dict(collect_report(DoctorConfig(data_root=str(tmp_path))))
    assert report["torch"] and report["timm"] and report["kornia"]
    assert not report["OpenSlide library"].startswith("unavailable")
    assert report["dataset glas"] == str(tmp_path / "glas")
    assert report["dataset bach"] == "not found"


def test_data_root_defaults_to_rckd_data(shared_data, monkeypatch):
    monkeypatch.setenv("RCKD_DATA", str(shared_data))
    report = dict(collect_report(DoctorConfig()))
    assert report["data root"] == str(shared_data.resolve())
    for name in ("monuseg", "glas", "crchisto", "wsi"):
        assert report[f"dataset {name}"] != "not found", name
