"""The quick demo end to end, as the README runs it: slide, tiles, teacher, RCKD, fine-tuning, table."""

from __future__ import annotations

import h5py
import pytest

from rckd.demo import DemoConfig
from rckd.io import read_json


@pytest.mark.slow
def test_quick_demo_runs_every_stage(quick_demo):
    cwd, proc = quick_demo
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = cwd / "runs" / "demo"
    results = read_json(out / "results.json")
    assert results["config"]["device"] == "auto"  # the default: resolved where it is used
    assert set(results["timings_s"]) >= {"slide", "teacher", "teacher_eval", "grid", "total"}
    runs = results["runs"]
    assert runs and all(r["status"] == "done" for r in runs), runs
    stages = {r["stage"] for r in runs}
    assert stages == {"pool", "pretrain", "finetune"}
    assert 0.0 <= results["teacher"]["teacher_dice_synthetic"] <= 1.0
    # the pool really is an h5 tile set cut from the synthetic slide
    (h5,) = (out / "grid" / "pool").glob("*/patches/*.h5")
    with h5py.File(h5) as f:
        assert f["coords"].shape[0] > 10 and f["imgs"].shape[1:] == (64, 64, 3)
        n = f["coords"].shape[0]
    # the teacher labelled the pool once; the RCKD student names the teacher of those responses
    (cache,) = (out / "grid" / "pool" / "responses").rglob("*.h5")
    with h5py.File(cache) as f:
        assert f["responses"].shape == (n, 64, 64) and f.attrs["teacher_tta"] >= 1
        sha = f.attrs["teacher_sha256"]
    (student,) = (out / "grid" / "pretrain").rglob("rckd/**/backbone.json")
    assert read_json(student)["teacher"]["sha256"] == sha
    # one fine-tuning result per init and task, and the table shows both inits
    finetuned = list((out / "grid" / "finetune").rglob("results.json"))
    assert len(finetuned) == 4
    for path in finetuned:
        metrics = read_json(path)["metrics"]["test"]
        assert any(k in metrics for k in ("accuracy", "miou"))
    table = (out / "table.md").read_text()
    assert "random" in table.lower() and "rckd" in table.lower()
    assert table.splitlines()[0] in proc.stdout and "teacher Dice" in proc.stdout
    assert (out / "table.png").stat().st_size > 1000


def test_quick_shrinks_every_stage():
    from rckd.demo import _effective

    full, quick = DemoConfig(), _effective(DemoConfig(quick=True))
    for name in ("image_size", "slide_size", "teacher_steps", "pretrain_steps", "finetune_steps"):
        assert getattr(quick, name) < getattr(full, name), name
    assert quick.image_size % 32 == 0 and len(quick.seeds) == 1
