"""One function per verb: call the library with the resolved config, print what users read.

Each function imports its library module when it runs (so ``rckd --help`` and ``rckd tile``
never load torch), returns the exit code, and is the only place that prints for its verb
(the library functions log and write files; ``rckd tile`` still prints its own summary table).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rckd.config import Config, option

__all__ = ["TeacherListConfig", "demo", "doctor", "tile", "teacher_list", "teacher_train",
           "teacher_eval", "teacher_predict", "pretrain", "finetune", "reproduce", "columns"]


def columns(rows: list[tuple[str, ...]]) -> str:
    """Rows of cells as left-aligned columns (the first row is the header)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def demo(cfg) -> int:
    from rckd.demo import run_demo
    from rckd.io import read_json

    code = run_demo(cfg)
    out = Path(cfg.out)
    results = read_json(out / "results.json")
    print((out / "table.md").read_text())
    print(f"teacher Dice on unseen synthetic tiles: {results['teacher']['teacher_dice_synthetic']:.3f}")
    print(f"demo finished in {results['timings_s']['total'] / 60:.1f} min; outputs in {out}")
    return code


def doctor(cfg) -> int:
    from rckd.doctor import collect_report

    lines = collect_report(cfg)
    width = max(len(k) for k, _ in lines)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in lines))
    return 0


def tile(cfg) -> int:
    from rckd.data.wsi.pipeline import run_tiling

    return run_tiling(cfg)


@dataclasses.dataclass
class TeacherListConfig(Config):
    """List registered nuclei teachers: architecture, mpp, normalisation, outputs, weights, sha256."""

    check: bool = option(True, help="verify each weight file's checksum")


def teacher_list(cfg: TeacherListConfig) -> int:
    from rckd.models.teachers.registry import DEFAULT_TEACHER, teacher_entries, teacher_status

    status = dict(teacher_status()) if cfg.check else {}
    rows = [("name", "architecture", "mpp", "normalisation", "out", "path", "sha256", "status")]
    for name, e in teacher_entries().items():
        label = f"{name} (default)" if name == DEFAULT_TEACHER else name
        rows.append((label, e.architecture, f"{e.mpp:g}", e.normalisation, str(e.out_channels),
                     e.path or "-", (e.sha256 or "-")[:16], status.get(name, "-")))
    print(columns(rows))
    return 0


def teacher_train(cfg) -> int:
    from rckd.teacher.train import train_teacher

    train_teacher(cfg)
    return 0


def teacher_eval(cfg) -> int:
    from rckd.teacher.evaluate import evaluate_teacher

    r = evaluate_teacher(cfg)
    print(f"{cfg.teacher}: dice {r['dice']:.4f}  aji {r['aji']:.4f}  pq {r['pq']:.4f}"
          f"  ({len(r['images'])} images, {r['seconds']:.0f} s)")
    return 0


def teacher_predict(cfg) -> int:
    from rckd.teacher.predict import predict_responses

    predict_responses(cfg)
    return 0


def pretrain(cfg) -> int:
    from rckd.pretrain.run import pretrain as run

    print(run(cfg))
    return 0


def finetune(cfg) -> int:
    from rckd.finetune.run import finetune as run

    run(cfg)
    print(Path(cfg.out) / "results.json")
    return 0


def reproduce(cfg) -> int:
    from rckd.reproduce import reproduce as run

    code = run(cfg)
    print((Path(cfg.out) / "table.md").read_text())
    return code
