"""A grid is read, resolved and checked whole before anything runs; outputs stay inside --out."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from rckd import reproduce as rp
from rckd.cli import main
from rckd.config import ConfigError, load_config
from rckd.grid import ReproduceConfig, plan_grid

GRID = {
    "backbones": ["resnet18"],
    "inits": ["random", "rckd", "moco"],
    "seeds": [0, 1],
    "keep_going": False,
    "threads": 1,
    "pretrain_per_seed": True,
    "datasets": {"glas": {"dataset": "glas", "root": "glas"}, "cls": {"dataset": "synthetic"}},
    "pretrain": {"steps": 3, "image_size": 64, "rckd": {"teacher": "classical"}},
    "pretrain_methods": {"moco": {"lr": 0.01, "moco": {"queue": 64}}},
    "finetune": {"steps": 2},
}


@pytest.fixture
def nothing_runs(monkeypatch):
    """Record any run the grid would start (there must be none)."""
    calls = []
    monkeypatch.setattr(rp, "_pretrain", lambda run, cached=True: calls.append(run) or ("x", "done"))
    monkeypatch.setattr(rp, "_finetune", lambda run: calls.append(run) or "done")
    monkeypatch.setattr(rp, "_tile_pool", lambda cfg, plan: calls.append("pool") or "x")
    monkeypatch.setattr(rp, "_cache_responses", lambda plan: calls.append("responses") or "x")
    return calls


def _write(tmp_path, grid: dict | str) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(grid if isinstance(grid, str) else yaml.safe_dump(grid, sort_keys=False))
    return path


def test_every_run_is_built_with_the_layers_of_the_grid(tmp_path):
    plan = plan_grid(load_config(ReproduceConfig, _write(tmp_path, GRID), [f"out={tmp_path / 'o'}"]))
    assert [(r.method, r.seed) for r in plan.pretrain] == [("rckd", 0), ("rckd", 1), ("moco", 0), ("moco", 1)]
    moco = plan.pretrain[2].config
    assert (moco.lr, moco.moco.queue, moco.steps, moco.rckd.teacher) == (0.01, 64, 3, "classical")
    assert plan.pretrain[0].config.lr == 1e-3  # pretrain_methods.moco is moco's alone
    assert len(plan.finetune) == 3 * 2 * 2 and all(r.config.steps == 2 for r in plan.finetune)
    rckd = [r for r in plan.finetune if r.init == "rckd"]
    assert all(r.config.init == str(Path(r.pretrain.config.out) / "backbone.safetensors") for r in rckd)
    glas = next(r for r in plan.finetune if r.dataset == "glas")
    assert glas.config.root.endswith("glas") and Path(glas.config.root).is_absolute()


def test_a_typo_in_a_nested_option_stops_the_grid_before_any_run(tmp_path, nothing_runs, capsys):
    text = yaml.safe_dump(GRID, sort_keys=False).replace("moco:\n      queue: 64", "moco:\n      queeu: 64")
    grid = _write(tmp_path, text)
    line = text.splitlines().index("      queeu: 64") + 1
    t0 = time.perf_counter()
    assert main(["reproduce", str(grid), "--out", str(tmp_path / "o")]) == 2
    assert time.perf_counter() - t0 < 30
    err = capsys.readouterr().err.strip()
    assert err == (f"rckd reproduce: error: {grid}:{line}:7: pretrain_methods.moco.moco.queeu: unknown option "
                   "(did you mean 'queue'?)")
    assert nothing_runs == [] and not (tmp_path / "o").exists()


@pytest.mark.parametrize("override, message", [
    ("pretrain.image_size=100", "pretrain resnet18/rckd: image_size: must be a multiple of 32, got 100"),
    ("datasets.glas.finetune.mode=knn", "finetune resnet18/random/glas/seed0: mode=knn needs a classification dataset"),
    ("datasets.cls.options.siz=3", "finetune resnet18/random/cls/seed0: dataset_options.siz: dataset 'synthetic' "
                                   "does not take option 'siz' (did you mean 'size'?)"),
    ("finetune.optimizer=adam", "finetune.optimizer=adam: expected one of adamw, sgd, got 'adam'"),
    ("pretrain_methods.dino.steps=1", "pretrain_methods.dino: not a pretraining method"),
    ("pretrain.steps=0", "pretrain.steps=0: must be at least 1, got 0"),
    ("pool.sources=[{dataset: glas, split: test}]", "split 'test' of glas cannot enter the pool"),
    ("pool.sources=[{root: glas}]", "each entry needs either 'path' (slides/images) or 'dataset'"),
    ("pool.sources=[{path: x.svs, mpp: 0}]", "pool.sources[0].mpp: must be greater than 0, got 0"),
])
def test_bad_cells_are_refused_naming_the_run(tmp_path, nothing_runs, capsys, override, message):
    assert main(["reproduce", str(_write(tmp_path, GRID)), "--out", str(tmp_path / "o"), override]) == 2
    assert message in capsys.readouterr().err
    assert nothing_runs == [] and not (tmp_path / "o").exists()


@pytest.mark.parametrize("grid", [
    {**GRID, "datasets": {"../x": {"dataset": "synthetic"}}},
    {**GRID, "backbones": ["../resnet18"]},
])
def test_folder_names_cannot_leave_out(tmp_path, nothing_runs, grid):
    with pytest.raises(ConfigError, match="is used as a folder name"):
        load_config(ReproduceConfig, _write(tmp_path, grid))


def test_command_line_wins_over_the_grid_even_at_defaults(tmp_path, nothing_runs):
    grid = _write(tmp_path, GRID)
    typed = ["reproduce", str(grid), "--out", str(tmp_path / "o"), "--keep-going", "--threads", "none",
             "--no-pretrain-per-seed", "finetune.steps=5", "finetune.lr=0.01", "datasets.cls.options.size=32",
             "datasets.cls.options.n=8"]
    assert main(typed) == 0
    saved = yaml.safe_load((tmp_path / "o" / "config.yaml").read_text())
    assert saved["keep_going"] is True and saved["threads"] is None and saved["pretrain_per_seed"] is False
    assert saved["finetune"] == {"steps": 5, "lr": 0.01}  # dotted keys into one mapping: both kept
    assert saved["datasets"]["cls"]["options"] == {"size": 32, "n": 8}
    assert saved["datasets"]["glas"]["root"] == "glas"


@pytest.mark.parametrize("name", ["synthetic", "real_mini", "rckd_table"])
def test_shipped_grids_plan(name):
    grid = Path(__file__).resolve().parents[1] / "experiments" / f"{name}.yaml"
    plan = plan_grid(load_config(ReproduceConfig, grid))
    assert plan.columns and plan.finetune and len({r.seed for r in plan.finetune}) >= 3


def test_one_seed_is_a_list_of_one(tmp_path):
    for source in (["seeds=1"], ["seeds=[1]"]):
        assert load_config(ReproduceConfig, None, source).seeds == [1]
    (tmp_path / "g.yaml").write_text("seeds: 1\n")
    assert load_config(ReproduceConfig, tmp_path / "g.yaml").seeds == [1]
