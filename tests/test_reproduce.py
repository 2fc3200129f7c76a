"""The grid runner: resume of a partly finished grid, staleness, command line over the grid file."""

import json
from pathlib import Path

import pytest
import yaml

from rckd import reproduce as rp
from rckd.cli import main
from rckd.config import load_config, to_dict
from rckd.grid import ReproduceConfig, plan_grid
from rckd.io import write_json

GRID = {
    "title": "test grid",
    "backbones": ["resnet18"],
    "inits": ["random", "rckd", "imagenet"],
    "seeds": [0, 1, 2],
    "datasets": {"glas": {"dataset": "glas", "root": "glas", "title": "GlaS", "paper": "GlaS"},
                 "cls": {"dataset": "synthetic", "title": "Synth"}},
}


def _fake_runs(monkeypatch, calls):
    def fake_pretrain(run, cached=True):
        calls.append(("pretrain", run.backbone, run.method, run.seed))
        return run.config.out, "done"

    def fake_finetune(run):
        folder = Path(run.config.out)
        if (folder / "results.json").is_file():
            return "skipped"
        calls.append(("finetune", run.init, run.dataset, run.seed, run.config.init))
        value = {"random": 0.5, "rckd": 0.8}[run.init] + 0.01 * run.seed
        metrics = {"miou": value} if run.dataset == "glas" else {"accuracy": value}
        write_json(folder / "results.json", {"metrics": {"test": metrics, "val": metrics},
                                             "grid": {"backbone": run.backbone, "init": run.init,
                                                      "dataset": run.dataset, "seed": run.seed}})
        return "done"

    monkeypatch.setattr(rp, "_pretrain", fake_pretrain)
    monkeypatch.setattr(rp, "_finetune", fake_finetune)


def test_partly_finished_grid_resumes(tmp_path, monkeypatch, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(GRID))
    out = tmp_path / "out"
    # a previous invocation finished two runs, and a third crashed (no results.json)
    for init, key, seed in (("random", "glas", 0), ("rckd", "cls", 2)):
        value = 0.5 if init == "random" else 0.82
        m = {"miou": value} if key == "glas" else {"accuracy": value}
        write_json(out / "finetune" / "resnet18" / init / key / f"seed{seed}" / "results.json",
                   {"metrics": {"test": m}, "grid": {"backbone": "resnet18", "init": init,
                                                     "dataset": key, "seed": seed}})
    (out / "finetune" / "resnet18" / "rckd" / "glas" / "seed1").mkdir(parents=True)
    calls = []
    _fake_runs(monkeypatch, calls)
    assert main(["reproduce", str(grid), "--out", str(out)]) == 0
    ft = [c for c in calls if c[0] == "finetune"]
    assert len(ft) == 2 * 2 * 3 - 2  # two runs were already finished
    assert ("finetune", "random", "glas", 0, "random") not in ft
    assert [c for c in calls if c[0] == "pretrain"] == [("pretrain", "resnet18", "rckd", 0)]  # once
    assert all(c[4].endswith("pretrain/resnet18/rckd/backbone.safetensors") for c in ft if c[1] == "rckd")
    log = json.loads((out / "reproduce.json").read_text())["runs"]
    assert sum(r["status"] == "skipped" for r in log if r["stage"] == "finetune") == 2
    table = (out / "table.md").read_text()
    assert "0.510 ± 0.010 (n=3) [0.830]" in table  # random GlaS: 0.50, 0.51, 0.52 vs paper 0.830
    assert "no local weight file" in table and (out / "table.png").stat().st_size > 1000
    csv_rows = (out / "table.csv").read_text().splitlines()
    assert "resnet18,random,cls,accuracy,51,1,3," in csv_rows
    assert "test grid" in capsys.readouterr().out  # the command prints the table
    # a second invocation runs nothing
    calls.clear()
    assert rp.reproduce(load_config(ReproduceConfig, grid, [f"out={out}"])) == 0
    assert [c for c in calls if c[0] == "finetune"] == []


def test_changed_config_makes_a_run_stale(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("rckd.finetune.run.finetune", lambda c: calls.append(c.steps))
    cfg = ReproduceConfig(out=str(tmp_path), datasets={"s": {"dataset": "synthetic"}}, finetune={"steps": 5},
                          inits=["random"], seeds=[0])
    from rckd.finetune.run import FinetuneConfig
    (run,) = plan_grid(cfg).finetune
    saved = to_dict(FinetuneConfig(steps=5, dataset="synthetic", seed=0, out="elsewhere", threads=4,
                                   tags={"x": 1}))
    write_json(tmp_path / "finetune" / "resnet18" / "random" / "s" / "seed0" / "results.json",
               {"metrics": {}, "config": saved})
    assert rp._finetune(run) == "skipped"
    (run,) = plan_grid(ReproduceConfig(out=str(tmp_path), datasets={"s": {"dataset": "synthetic"}},
                                       finetune={"steps": 6}, inits=["random"], seeds=[0])).finetune
    assert rp._finetune(run) == "done" and calls == [6]
    assert rp.config_changes({"a": 1, "out": "x"}, {"a": 2, "out": "y", "b": 0}) == ["a"]


def test_saved_values_in_older_spellings_are_not_changes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    saved = {"grad_clip": 0.0, "slide_root": "", "root": "data", "steps": 5}
    current = {"grad_clip": None, "slide_root": None, "root": str(tmp_path / "data"), "steps": 6}
    assert rp.config_changes(saved, current) == ["steps"]


@pytest.mark.slow
def test_real_cpu_grid_runs_end_to_end_at_a_reduced_budget(tmp_path):
    """experiments/real_cpu.yaml as committed, shrunk: one slide in the pool, 2 steps, one seed."""
    from tests.conftest import shared_path

    data = shared_path()
    grid = Path(__file__).resolve().parents[1] / "experiments" / "real_cpu.yaml"
    out = tmp_path / "real"
    cfg = load_config(ReproduceConfig, grid, [
        f"out={out}", f"data_root={data}", "backbones=csat_tiny", "seeds=0", "inits=random,barlow,moco,rckd",
        "pool.sources=[{path: wsi/CMU-1-Small-Region.svs}]",
        "pretrain={steps: 2, batch_size: 8, warmup_steps: 1, eval_every: 2, ckpt_every: none, log_every: 1}",
        "pretrain_methods.moco.moco.queue=16",
        "finetune={steps: 2, input_mpp: 4.0, eval_batch_size: 64}",
        *(f"datasets.{k}.finetune={{steps: 2, batch_size: 4}}"
          for k in ("lymphoma", "lymphoma_linear", "glas", "glas_grade", "crchisto"))])
    assert rp.reproduce(cfg) == 0
    manifest = json.loads(next((out / "pool").glob("*/manifest.json")).read_text())
    assert manifest["tiles"] > 10 and list(manifest["sources"]) == ["wsi/CMU-1-Small-Region.svs"]
    pool = json.loads((out / "pretrain" / "csat_tiny" / "rckd" / "pool.json").read_text())
    assert pool["manifest"] == manifest and pool["responses"]["tta"] == 1
    assert len(list((out / "finetune").rglob("results.json"))) == 4 * 5
    table = (out / "table.md").read_text()
    for title in ("Lymphoma (acc %)", "Lymphoma linear probe", "GlaS glands (mIoU)", "GlaS grade", "CRCHisto"):
        assert title in table
    assert "| csat_tiny | MoCo |" in table.split("RCKD minus each other init")[1]  # paired differences
    runs = table.split("### Pretraining runs")[1]
    assert runs.count("| csat_tiny |") == 3 and "| 16 |" in runs  # 2 steps x 8 images, each method
