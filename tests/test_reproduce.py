"""The grid runner: resume of a partly finished grid, and the table rendered from results files."""

import json
import math
from pathlib import Path

import pytest
import yaml

from rckd import reproduce as rp
from rckd.io import write_json
from rckd.report import PAPER, Column, collect, render_csv, render_markdown, summarise

GRID = {
    "title": "test grid",
    "backbones": ["resnet18"],
    "inits": ["random", "rckd", "imagenet"],
    "seeds": [0, 1, 2],
    "datasets": {"glas": {"dataset": "glas", "root": "glas", "title": "GlaS", "paper": "GlaS"},
                 "cls": {"dataset": "synthetic", "title": "Synth"}},
}


def _fake_runs(monkeypatch, calls):
    def fake_pretrain(cfg, backbone, method, seed, pool, out, cache=None):
        calls.append(("pretrain", backbone, method, seed))
        return out / "pretrain" / "w.safetensors", "done"

    def fake_finetune(cfg, backbone, init, key, seed, weights, out):
        folder = out / "finetune" / backbone / init / key / f"seed{seed}"
        if (folder / "results.json").is_file():
            return "skipped"
        calls.append(("finetune", init, key, seed, weights))
        value = {"random": 0.5, "rckd": 0.8}[init] + 0.01 * seed
        metrics = {"miou": value} if key == "glas" else {"accuracy": value}
        write_json(folder / "results.json", {"metrics": {"test": metrics, "val": metrics},
                                             "grid": {"backbone": backbone, "init": init,
                                                      "dataset": key, "seed": seed}})
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
    code = rp.reproduce(rp.ReproduceConfig(grid=[str(grid)], out=str(out)))
    assert code == 0
    ft = [c for c in calls if c[0] == "finetune"]
    assert len(ft) == 2 * 2 * 3 - 2  # two runs were already finished
    assert ("finetune", "random", "glas", 0, None) not in ft
    assert all(c[4] is not None for c in ft if c[1] == "rckd")  # rckd fine-tunes from the pretrained file
    log = json.loads((out / "reproduce.json").read_text())["runs"]
    assert sum(r["status"] == "skipped" for r in log if r["stage"] == "finetune") == 2
    table = (out / "table.md").read_text()
    assert "0.510 ± 0.010 (n=3) [0.830]" in table  # random GlaS: 0.50, 0.51, 0.52 vs paper 0.830
    assert "no local weight file" in table and (out / "table.png").stat().st_size > 1000
    csv_rows = (out / "table.csv").read_text().splitlines()
    assert "resnet18,random,cls,accuracy,51,1,3," in csv_rows
    # a second invocation runs nothing
    calls.clear()
    assert rp.reproduce(rp.ReproduceConfig(grid=[str(grid)], out=str(out))) == 0
    assert [c for c in calls if c[0] == "finetune"] == []
    assert "test grid" in capsys.readouterr().out


def test_changed_config_makes_a_run_stale(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("rckd.finetune.run.finetune", lambda c: calls.append(c.steps))
    cfg = rp.ReproduceConfig(out=str(tmp_path), datasets={"s": {"dataset": "synthetic"}},
                             finetune={"steps": 5})
    from rckd.config import to_dict
    from rckd.finetune.run import FinetuneConfig
    folder = tmp_path / "finetune" / "resnet18" / "random" / "s" / "seed0"
    saved = to_dict(FinetuneConfig(steps=5, dataset="synthetic", seed=0, out="elsewhere", threads=4,
                                   tags={"x": 1}))
    write_json(folder / "results.json", {"metrics": {}, "config": saved})
    assert rp._finetune(cfg, "resnet18", "random", "s", 0, None, tmp_path) == "skipped"
    cfg.finetune = {"steps": 6}
    assert rp._finetune(cfg, "resnet18", "random", "s", 0, None, tmp_path) == "done" and calls == [6]
    assert rp.config_changes({"a": 1, "out": "x"}, {"a": 2, "out": "y", "b": 0}) == ["a"]


def test_command_line_wins_over_grid_file(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(GRID))
    cfg = rp.resolve_grid(rp.ReproduceConfig(grid=[str(grid)], seeds=[7], data_root="/data",
                                             datasets={"glas": {"options": {"x": 1}}}))
    assert cfg.seeds == [7] and cfg.data_root == "/data" and cfg.inits == GRID["inits"]
    assert cfg.datasets["glas"] == {**GRID["datasets"]["glas"], "options": {"x": 1}}
    assert cfg.datasets["cls"] == GRID["datasets"]["cls"]
    assert rp._root(cfg, "glas") == "/data/glas" and rp._root(cfg, "/abs/x") == "/abs/x"
    with pytest.raises(ValueError, match="unknown init"):
        rp.reproduce(rp.ReproduceConfig(grid=[str(grid)], inits=["dino"], out=str(tmp_path / "o")))


def test_render_from_results_files(tmp_path):
    cols = [Column("bach", "BACH", "classification", paper="BACH"),
            Column("glas", "GlaS", "segmentation", paper="GlaS")]
    for seed, (acc, miou) in enumerate([(0.80, 0.90), (0.90, 0.92)]):
        write_json(tmp_path / f"r{seed}" / "results.json", {
            "metrics": {"test": {"accuracy": acc}}, "grid": {"backbone": "csat", "init": "rckd", "dataset": "bach", "seed": seed}})
        write_json(tmp_path / f"s{seed}" / "results.json", {
            "metrics": {"test": {"miou": miou}}, "grid": {"backbone": "csat", "init": "rckd", "dataset": "glas", "seed": seed}})
    write_json(tmp_path / "untagged" / "results.json", {"metrics": {}})
    rows = collect(tmp_path.rglob("results.json"))
    assert len(rows) == 4
    summary = summarise(rows, cols, ["csat"], ["random", "rckd"])
    cell = summary[1]["cells"]["bach"]
    assert cell["mean"] == pytest.approx(85.0) and cell["std"] == pytest.approx(math.sqrt(50))
    assert cell["n"] == 2 and cell["paper"] == PAPER[("csat", "rckd")]["BACH"] == 90.6
    assert summary[1]["avg_segmentation"] == pytest.approx(0.91)
    assert summary[0]["cells"]["glas"]["n"] == 0 and math.isnan(summary[0]["avg_classification"])
    md = render_markdown(summary, cols, "t")
    assert "| csat | RCKD | 85.0 ± 7.1 (n=2) [90.6] | 85.0 | 0.910 ± 0.014 (n=2) [0.912] | 0.910 |" in md
    assert "| csat | random | n/a [41.3] | — | n/a [0.872] | — |" in md
    assert render_csv(summary, cols).splitlines()[3] == "csat,rckd,bach,accuracy,85,7.07107,2,90.6"
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="bad.json"):
        collect([tmp_path / "bad.json"])


@pytest.mark.parametrize("name", ["synthetic", "real_mini", "rckd_table"])
def test_shipped_grids_load(name):
    grid = Path(__file__).resolve().parents[1] / "experiments" / f"{name}.yaml"
    cfg = rp.resolve_grid(rp.ReproduceConfig(grid=[str(grid)]))
    cols = rp._columns(cfg)
    assert len(cfg.seeds) >= 3 and set(cfg.inits) <= set(rp.INITS) and cols
    from rckd.finetune.run import FinetuneConfig
    from rckd.config import from_dict
    from rckd.pretrain.run import PretrainConfig
    from_dict(PretrainConfig, {**cfg.pretrain, **cfg.pretrain_methods.get("moco", {})})
    for spec in cfg.datasets.values():
        from_dict(FinetuneConfig, {**cfg.finetune, **spec.get("finetune", {})})


@pytest.mark.slow
def test_real_cpu_grid_runs_end_to_end_at_a_reduced_budget(tmp_path):
    """experiments/real_cpu.yaml as committed, shrunk: one slide in the pool, 2 steps, one seed."""
    from tests.conftest import shared_path

    data = shared_path()
    grid = Path(__file__).resolve().parents[1] / "experiments" / "real_cpu.yaml"
    out = tmp_path / "real"
    cfg = rp.ReproduceConfig(
        grid=[str(grid)], out=str(out), data_root=str(data), backbones=["csat_tiny"], seeds=[0],
        inits=["random", "barlow", "moco", "rckd"],
        pool={"sources": [{"path": "wsi/CMU-1-Small-Region.svs"}]},
        pretrain={"steps": 2, "batch_size": 8, "warmup_steps": 1, "eval_every": 2, "ckpt_every": 0,
                  "log_every": 1},
        pretrain_methods={"moco": {"moco_queue": 16}},
        finetune={"steps": 2, "input_mpp": 4.0, "eval_batch_size": 64},
        datasets={k: {"finetune": {"steps": 2, "batch_size": 4}} for k in
                  ("lymphoma", "lymphoma_linear", "glas", "glas_grade", "crchisto")})
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
