"""``rckd demo``: the whole RCKD pipeline on the synthetic H&E world, on a CPU, in minutes.

Stages, each the real thing at small scale behind the package's public functions:

1. a synthetic pyramidal whole-slide image (:func:`rckd.data.synthetic.write_synthetic_slide`);
2. a nuclei teacher trained on the synthetic world's exact nuclei masks
   (:func:`rckd.teacher.train.train_teacher`), scored on unseen synthetic tiles;
3. the grid of :func:`rckd.reproduce.reproduce`: the slide is tiled with ``rckd tile`` into an
   h5 tile set (the unlabeled pool), a ResNet18 student is RCKD-pretrained on it against the
   teacher, then random-init and RCKD-init students are fine-tuned on synthetic tissue
   classification and gland segmentation, and the table is rendered (Markdown, CSV, PNG).

``<out>/results.json`` gathers the stage timings, the teacher's scores and the table's cells;
``<out>/table.md`` and ``<out>/table.png`` are the table and its chart. ``--quick`` shrinks every
stage so the whole run takes about a minute (the tests run it).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from rckd.config import RunConfig, from_dict, option, save_config, to_dict
from rckd.io import atomic_write_bytes, atomic_write_text, read_json, write_json

__all__ = ["DemoConfig", "run_demo", "demo_grid"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class DemoConfig(RunConfig):
    """Run the whole RCKD pipeline on the synthetic world: slide, tiles, teacher, RCKD, fine-tuning."""

    DEFAULTS = {"out": "runs/demo"}

    quick: bool = option(False, help="tiny sizes: about a minute (used by the tests)")
    backbone: str = option("resnet18", help="student backbone")
    image_size: int = option(96, ge=32, help="student tile side in pixels (0.5 um/px), a multiple of 32")
    slide_size: int = option(3072, ge=256, help="side of the synthetic slide in pixels")
    teacher_steps: int = option(120, ge=1, help="teacher training steps on synthetic nuclei")
    pretrain_steps: int = option(100, ge=1, help="RCKD pretraining steps")
    finetune_steps: int = option(40, ge=1, help="fine-tuning steps per run")
    batch_size: int = option(32, ge=1, help="pretraining and fine-tuning batch size")
    train_size: int = option(192, ge=1, help="labelled training tiles per downstream task")
    test_size: int = option(128, ge=1, help="test tiles per downstream task")
    seeds: list[int] = option(default_factory=lambda: [0, 1], ge=0, help="fine-tuning seeds")
    threads: int | None = option(None, ge=1, help="torch CPU threads (none: torch's default)")


def _effective(cfg: DemoConfig) -> DemoConfig:
    if not cfg.quick:
        return cfg
    return dataclasses.replace(cfg, image_size=64, slide_size=1536, teacher_steps=15,
                               pretrain_steps=8, finetune_steps=8, batch_size=16, train_size=32,
                               test_size=32, seeds=cfg.seeds[:1])


def _write_slide(cfg: DemoConfig, out: Path) -> Path:
    from rckd.data.synthetic import write_synthetic_slide

    path = out / "slide" / "synthetic_slide.tiff"
    if path.is_file():
        return path
    return Path(write_synthetic_slide(path, width=cfg.slide_size, height=cfg.slide_size, mpp=0.5,
                                      seed=cfg.seed))


def _train_teacher(cfg: DemoConfig, out: Path) -> Path:
    from rckd.teacher.train import TeacherTrainConfig, train_teacher

    folder = out / "teacher"
    path = folder / "teacher.safetensors"
    if not path.is_file():
        tcfg = from_dict(TeacherTrainConfig, {"out": str(folder), "data": "synthetic", "device": cfg.device,
                                              "seed": cfg.seed, "steps": cfg.teacher_steps})
        train_teacher(tcfg)
    return path


def _score_teacher(cfg: DemoConfig, teacher_path: Path) -> dict:
    """Dice of the teacher's nuclei map against the exact masks of unseen synthetic tiles."""
    import torch

    from rckd.data.synthetic import SyntheticDataset
    from rckd.metrics.instance import dice
    from rckd.models.teachers import get_teacher

    teacher = get_teacher(str(teacher_path), device=cfg.device)  # "auto" resolves to a real device
    data = SyntheticDataset(16, seed=cfg.seed + 10_000, size=cfg.image_size, mpp=0.5, task="nuclei")
    scores = []
    with torch.no_grad():
        for i in range(len(data)):
            s = data[i]
            prob = teacher.response(s["image"][None], 0.5)[0, 0].cpu().numpy()
            scores.append(dice(prob > 0.5, s["mask"].numpy() > 0))
    return {"teacher_dice_synthetic": float(sum(scores) / len(scores)), "tiles": len(scores)}


def demo_grid(cfg: DemoConfig, slide: Path, teacher: Path, out: Path) -> dict:
    """The :class:`~rckd.grid.ReproduceConfig` overrides the demo runs."""
    sizes = {"train": cfg.train_size, "val": max(8, cfg.test_size // 4), "test": cfg.test_size}
    train_steps = {"steps": cfg.finetune_steps, "batch_size": cfg.batch_size, "lr": 1e-3,
                   "warmup_steps": max(1, cfg.finetune_steps // 10), "image_size": cfg.image_size,
                   "log_every": max(1, cfg.finetune_steps // 5), "eval_batch_size": 64}
    return {
        "out": str(out / "grid"), "device": cfg.device, "seed": cfg.seed,
        "title": f"RCKD demo on the synthetic world ({cfg.backbone}, {cfg.image_size} px, 0.5 um/px)",
        "backbones": [cfg.backbone], "inits": ["random", "rckd"], "seeds": list(cfg.seeds),
        "threads": cfg.threads,
        "datasets": {
            "tissue": {"dataset": "synthetic", "title": "Synthetic tissue (acc %)",
                       "options": {"size": cfg.image_size, "sizes": sizes}},
            "glands": {"dataset": "synthetic_seg", "title": "Synthetic glands (mIoU)",
                       "options": {"size": cfg.image_size, "sizes": sizes}},
        },
        "pool": {"sources": [{"path": str(slide.resolve()), "mpp": 0.5}],
                 "tile": {"target_mpp": 0.5, "patch_size": cfg.image_size, "save_images": True,
                          "min_tissue": 0.5}},
        "pretrain": {"image_size": cfg.image_size, "steps": cfg.pretrain_steps,
                     "batch_size": cfg.batch_size, "lr": 1e-3, "workers": 0, "probe_size": None,
                     "warmup_steps": max(1, cfg.pretrain_steps // 10),
                     "log_every": max(1, cfg.pretrain_steps // 5),
                     "rckd": {"teacher": str(teacher.resolve())}},
        "finetune": train_steps,
        "notes": [f"teacher: U-Net trained {cfg.teacher_steps} steps on synthetic nuclei masks; "
                  f"RCKD pretraining {cfg.pretrain_steps} steps x {cfg.batch_size} tiles from the "
                  f"tiled synthetic slide; fine-tuning {cfg.finetune_steps} steps x {cfg.batch_size} "
                  f"on {cfg.train_size} labelled tiles, tested on {cfg.test_size} unseen tiles"],
    }


def _stage(timings: dict, name: str, fn):
    t = time.perf_counter()
    log.info("demo stage: %s", name)
    result = fn()
    timings[name] = round(time.perf_counter() - t, 2)
    return result


def run_demo(cfg: DemoConfig) -> int:
    """Run every stage, write the table and ``results.json``; 0 when every run finished."""
    from rckd.grid import ReproduceConfig
    from rckd.reproduce import reproduce

    cfg = _effective(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    slide = _stage(timings, "slide", lambda: _write_slide(cfg, out))
    teacher = _stage(timings, "teacher", lambda: _train_teacher(cfg, out))
    teacher_scores = _stage(timings, "teacher_eval", lambda: _score_teacher(cfg, teacher))
    grid = from_dict(ReproduceConfig, demo_grid(cfg, slide, teacher, out))
    code = _stage(timings, "grid", lambda: reproduce(grid))
    timings["total"] = round(time.perf_counter() - t0, 2)
    table = (out / "grid" / "table.md").read_text()
    atomic_write_text(out / "table.md", table)
    if (out / "grid" / "table.png").is_file():
        atomic_write_bytes(out / "table.png", (out / "grid" / "table.png").read_bytes())
    runs = read_json(out / "grid" / "reproduce.json")["runs"]
    write_json(out / "results.json", {"config": to_dict(cfg), "timings_s": timings,
                                      "teacher": teacher_scores, "runs": runs,
                                      "table_markdown": table})
    return code
