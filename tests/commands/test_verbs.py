"""The verbs' printed output: what users read on stdout."""

from __future__ import annotations

from rckd.cli import main
from rckd.commands.verbs import columns


def test_teacher_list_prints_every_teacher(capsys):
    assert main(["teacher", "list", "--no-check"]) == 0
    out = capsys.readouterr().out
    for word in ("monuseg-unet (default)", "classical", "mpp", "sha256", "normalisation"):
        assert word in out


def test_doctor_prints_an_aligned_report(tmp_path, capsys):
    (tmp_path / "glas").mkdir()
    assert main(["doctor", f"data_root={tmp_path}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    glas = next(line for line in lines if line.startswith("dataset glas "))
    bach = next(line for line in lines if line.startswith("dataset bach "))
    assert glas.endswith(str(tmp_path / "glas")) and bach.endswith("not found")
    # values start in one column
    assert len(glas) - len(str(tmp_path / "glas")) == len(bach) - len("not found")


def test_columns_pad_to_the_widest_cell():
    assert columns([("a", "bb"), ("ccc", "d")]).splitlines() == ["a    bb", "ccc  d"]
