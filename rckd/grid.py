"""The grid of ``rckd reproduce``: its config, and every run it implies, checked before any runs.

A grid file holds overrides of :class:`ReproduceConfig`: backbones x initialisations x dataset
columns x seeds, the pretraining and fine-tuning options shared by the cells (``pretrain``,
``pretrain_methods.<method>``, ``finetune``, ``datasets.<key>.finetune``) and an optional unlabeled
``pool`` tiled from slides. Those sections are declared as overrides of the configs they feed
(:class:`~rckd.config.Overrides`), so a typo anywhere in the file is reported with its line and
key path while the file is read.

:func:`plan_grid` then builds the full config of every pretraining and fine-tuning run (the
relations between options are checked too), and the names that become folders are checked to be
plain names, so every output stays inside ``out``. ``rckd reproduce`` runs nothing unless the whole
plan is valid.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rckd.config import Config, ConfigError, Overrides, RunConfig, from_dict, option, section
from rckd.config.values import merge
from rckd.data.datasets import DATASETS, dataset_task
from rckd.data.wsi.pipeline import TileConfig, run_dir_name
from rckd.finetune.run import FinetuneConfig
from rckd.io import safe_name
from rckd.paths import data_root
from rckd.pretrain.run import PretrainConfig
from rckd.report import PAPER_COLUMNS, Column
from rckd.teacher.predict import PredictConfig

__all__ = ["ReproduceConfig", "DatasetEntry", "PoolSpec", "PoolEntry", "PretrainRun", "FinetuneRun",
           "GridPlan", "plan_grid", "INITS", "PRETRAINED"]

#: initialisations that need a pretraining run (method name in rckd.pretrain.METHODS)
PRETRAINED = ("barlow", "moco", "rckd")
INITS = ("random", "barlow", "moco", "imagenet", "rckd")


def _folder_name(value: str) -> str:
    if safe_name(value) != value:
        raise ValueError(f"{value!r} is used as a folder name: use letters, digits and -_.()+ only")
    return value


@dataclasses.dataclass
class DatasetEntry(Config):
    """One dataset column: which dataset, where, its options and how the table shows it."""

    dataset: str = option(choices=tuple(DATASETS), help="registered dataset name")
    root: str | None = option(None, help="dataset root, relative to data_root (none: synthetic)")
    options: dict = option(default_factory=dict, help="keyword arguments of the dataset")
    title: str | None = option(None, help="column header (none: the key)")
    paper: str | None = option(None, choices=PAPER_COLUMNS, help="the paper's column shown beside it")
    metric: str | None = option(None, help="metric key (none: accuracy or miou by the task)")
    finetune: Overrides[FinetuneConfig] = option(default_factory=dict,
                                                 help="fine-tuning options for this column")


@dataclasses.dataclass
class PoolEntry(Config):
    """One source of the unlabeled pool: slides or images (``path``), or the train split of a
    labelled ``dataset`` (see :mod:`rckd.pretrain.sources`); paths relative to data_root."""

    path: str | None = option(None, help="slide/image file or glob pattern")
    dataset: str | None = option(None, choices=tuple(DATASETS), help="a registered labelled dataset")
    root: str | None = option(None, help="the dataset's root (none: its name)")
    split: str = option("train", help="the dataset split (only train may enter a pool)")
    options: dict = option(default_factory=dict, help="keyword arguments of the dataset")
    mpp: float | None = option(None, gt=0, help="level-0 microns per pixel where the files have none")

    def validate(self) -> None:
        if (self.path is None) == (self.dataset is None):
            raise ValueError("pool.sources: each entry needs either 'path' (slides/images) or 'dataset'")
        if self.dataset is not None and self.split != "train":
            raise ValueError(f"pool.sources: split {self.split!r} of {self.dataset} cannot enter the pool "
                             "(only train: val and test images must stay unseen)")

    def as_source(self) -> dict:
        """The entry as :func:`rckd.pretrain.sources.resolve_sources` reads it (unset keys left out)."""
        if self.path is not None:
            return {"path": self.path, **({"mpp": self.mpp} if self.mpp is not None else {})}
        entry = {"dataset": self.dataset, "split": self.split, "options": dict(self.options)}
        entry.update({k: v for k, v in (("root", self.root), ("mpp", self.mpp)) if v is not None})
        return entry


@dataclasses.dataclass
class PoolSpec(Config):
    """The unlabeled pool tiled with ``rckd tile`` before pretraining (no sources: no pool)."""

    sources: list[PoolEntry] = option(default_factory=list, help="slides, images and dataset train splits")
    tile: Overrides[TileConfig] = option(default_factory=dict, help="rckd tile options")
    cache_responses: bool = option(True, help="label the pool with the RCKD teacher once, shared by "
                                              "every backbone")


@dataclasses.dataclass
class ReproduceConfig(RunConfig):
    """Run a grid of pretraining + fine-tuning experiments and render the RCKD table."""

    DEFAULTS = {"out": "runs/reproduce"}

    title: str = option("RCKD table", help="table title")
    backbones: list[str] = option(default_factory=lambda: ["resnet18"], check=_folder_name,
                                  help="backbones")
    inits: list[str] = option(default_factory=lambda: list(INITS), choices=INITS, help="initialisations")
    seeds: list[int] = option(default_factory=lambda: [0, 1, 2], ge=0, help="fine-tuning seeds")
    data_root: str = option(default_factory=lambda: str(data_root()),
                            help="folder that relative dataset roots live in ($RCKD_DATA, else "
                                 "../shared/data beside the rckd checkout)")
    datasets: dict[str, DatasetEntry] = option(default_factory=dict, cli=False, help="dataset columns")
    pool: PoolSpec = section(PoolSpec)
    pretrain: Overrides[PretrainConfig] = option(default_factory=dict, cli=False,
                                                 help="pretraining options of every method")
    pretrain_methods: dict[str, Overrides[PretrainConfig]] = option(
        default_factory=dict, cli=False, help="method -> pretraining options of that method")
    finetune: Overrides[FinetuneConfig] = option(default_factory=dict, cli=False,
                                                 help="fine-tuning options of every column")
    imagenet_weights: dict[str, str] = option(default_factory=dict, cli=False,
                                              help="backbone -> local timm-format ImageNet weight file")
    pretrain_per_seed: bool = option(False, help="pretrain once per seed (default: once, seed = first)")
    threads: int | None = option(None, ge=1, help="torch CPU threads (none: torch's default)")
    report_only: bool = option(False, help="only render the table from existing results")
    keep_going: bool = option(True, help="record a failing run and go on with the grid")
    notes: list[str] = option(default_factory=list, cli=False, help="lines added under the table")

    def validate(self) -> None:
        for key in self.datasets:
            try:
                _folder_name(key)
            except ValueError as exc:
                raise ValueError(f"datasets.{key}: {exc}") from None
        unknown = sorted(set(self.pretrain_methods) - set(PRETRAINED))
        if unknown:
            raise ValueError(f"pretrain_methods.{unknown[0]}: not a pretraining method "
                             f"(known: {', '.join(PRETRAINED)})")
        if not self.seeds:
            raise ValueError("seeds: at least one seed is needed")


@dataclasses.dataclass(frozen=True)
class PretrainRun:
    """One pretraining run of the grid and its full config."""

    backbone: str
    method: str
    seed: int
    config: PretrainConfig

    @property
    def name(self) -> str:
        return f"{self.backbone}/{self.method}/seed{self.seed}"


@dataclasses.dataclass(frozen=True)
class FinetuneRun:
    """One fine-tuning cell of the grid, its full config and the pretraining it starts from."""

    backbone: str
    init: str
    dataset: str
    seed: int
    config: FinetuneConfig
    pretrain: PretrainRun | None = None

    @property
    def name(self) -> str:
        return f"{self.backbone}/{self.init}/{self.dataset}/seed{self.seed}"


@dataclasses.dataclass
class GridPlan:
    """Every run of a grid, checked: the pool's tiling and labelling, pretraining and fine-tuning."""

    columns: list[Column]
    tile: TileConfig | None
    responses: PredictConfig | None  # the RCKD teacher's responses for the whole pool
    pretrain: list[PretrainRun]
    finetune: list[FinetuneRun]
    notes: list[str]


def dataset_root(cfg: ReproduceConfig, root: str | None) -> str | None:
    """``root`` under ``cfg.data_root`` unless it is absolute (None stays None)."""
    if not root:
        return None
    p = Path(root).expanduser()
    return str(p if p.is_absolute() else Path(cfg.data_root) / p)


def _build(cls: type, values: dict, name: str):
    try:
        return from_dict(cls, values, where=name)
    except ConfigError as exc:
        msg = str(exc)
        raise ConfigError(msg if msg.startswith(name) else f"{name}: {msg}") from None


def _columns(cfg: ReproduceConfig) -> list[Column]:
    return [Column(key, e.title or key, dataset_task(e.dataset), e.metric or "", e.paper or "")
            for key, e in cfg.datasets.items()]


def plan_grid(cfg: ReproduceConfig) -> GridPlan:
    """Build and check the config of every run of ``cfg``; raise ``ConfigError`` naming the run."""
    if not cfg.datasets:
        raise ConfigError("datasets: the grid has no datasets")
    out = Path(cfg.out)
    tile = responses = pool = None
    if cfg.pool.sources:
        tile = _build(TileConfig, {**cfg.pool.tile, "slides": [str(out / "pool" / "slides.csv")],
                                   "out": str(out / "pool")}, "pool.tile")
        pool = str(out / "pool" / run_dir_name(tile) / "patches")
        if "rckd" in cfg.inits and cfg.pool.cache_responses:
            responses = _responses(cfg, pool)
    notes, pretrain, finetune = [], {}, []
    for backbone in cfg.backbones:
        for init in cfg.inits:
            weights = cfg.imagenet_weights.get(backbone) if init == "imagenet" else None
            if init == "imagenet" and not (weights and Path(weights).exists()):
                notes.append(f"supervised ImageNet / {backbone}: no local weight file "
                             f"(imagenet_weights.{backbone}=PATH), cells n/a")
                continue
            for seed in cfg.seeds:
                run = None
                if init in PRETRAINED:
                    p_seed = seed if cfg.pretrain_per_seed else cfg.seeds[0]
                    if (backbone, init, p_seed) not in pretrain:
                        pretrain[(backbone, init, p_seed)] = _pretrain_run(cfg, backbone, init, p_seed, pool,
                                                                           responses)
                    run = pretrain[(backbone, init, p_seed)]
                    weights = str(Path(run.config.out) / "backbone.safetensors")
                for key in cfg.datasets:
                    finetune.append(_finetune_run(cfg, backbone, init, key, seed, weights, run))
    return GridPlan(_columns(cfg), tile, responses, list(pretrain.values()), finetune, notes)


def _method_options(cfg: ReproduceConfig, method: str) -> dict:
    """The pretraining options of ``method``: ``pretrain`` with ``pretrain_methods.<method>`` over it."""
    return merge(cfg.pretrain, cfg.pretrain_methods.get(method, {}), Overrides[PretrainConfig])


def _responses(cfg: ReproduceConfig, pool: str) -> PredictConfig:
    """The RCKD teacher's responses for the whole pool, computed once and shared by every backbone.

    Teacher and test-time views are the rckd pretraining's; the folder is named after both, and a
    finished cache is reused only if the same teacher made it (``rckd teacher predict``).
    """
    opts = _method_options(cfg, "rckd")
    rckd = opts.get("rckd", {})
    teacher, tta = str(rckd.get("teacher", "default")), rckd.get("tta")
    folder = Path(cfg.out) / "pool" / "responses" / f"{safe_name(Path(teacher).stem)}_tta{tta or 0}"
    return _build(PredictConfig, {"inputs": [pool], "out": str(folder), "teacher": teacher, "tta": tta,
                                  "device": cfg.device, "batch_size": opts.get("batch_size", 16)},
                  "pool responses")


def _pretrain_run(cfg: ReproduceConfig, backbone: str, method: str, seed: int, pool: str | None,
                  responses: PredictConfig | None) -> PretrainRun:
    folder = Path(cfg.out) / "pretrain" / backbone / method / (f"seed{seed}" if cfg.pretrain_per_seed else "")
    values = _method_options(cfg, method)
    values.update(method=method, backbone=backbone, out=str(folder), device=cfg.device, seed=seed)
    if pool:
        values["pool"] = pool
    if responses is not None and method == "rckd":
        values["rckd"] = {**values.get("rckd", {}), "cache": responses.out}
    if values.get("probe_root"):
        values["probe_root"] = dataset_root(cfg, values["probe_root"])
    return PretrainRun(backbone, method, seed, _build(PretrainConfig, values, f"pretrain {backbone}/{method}"))


def _finetune_run(cfg: ReproduceConfig, backbone: str, init: str, key: str, seed: int,
                  weights: str | None, run: PretrainRun | None) -> FinetuneRun:
    entry = cfg.datasets[key]
    values = merge(cfg.finetune, entry.finetune, Overrides[FinetuneConfig])
    values.update(dataset=entry.dataset, root=dataset_root(cfg, entry.root),
                  dataset_options=merge(values.get("dataset_options", {}), entry.options, dict),
                  backbone=backbone, device=cfg.device, seed=seed, threads=cfg.threads,
                  out=str(Path(cfg.out) / "finetune" / backbone / init / key / f"seed{seed}"),
                  tags={"backbone": backbone, "init": init, "dataset": key, "seed": seed})
    if init == "imagenet":
        values.update(init="imagenet", imagenet_weights=weights)
    else:
        values["init"] = weights or "random"
    name = f"finetune {backbone}/{init}/{key}/seed{seed}"
    return FinetuneRun(backbone, init, key, seed, _build(FinetuneConfig, values, name), run)
