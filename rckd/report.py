"""Render the RCKD table from ``results.json`` files: Markdown, CSV and a PNG chart.

Rows are backbone x initialisation, columns the datasets of the grid (classification accuracy in
%, segmentation mIoU), each cell the mean +- sample std over seeds with the number of seeds, and
the paper's value beside it where the paper has that column (DESIGN.md section 2). Averages per
task group are plain means of the cell means over the datasets that have a value, as in the paper.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from rckd.io import atomic_path, atomic_write_text, read_json

__all__ = ["PAPER", "PAPER_COLUMNS", "Column", "collect", "summarise", "paired_differences",
           "render_markdown", "render_paired", "render_pretraining", "render_csv", "render_chart",
           "write_report", "INIT_NAMES"]

log = logging.getLogger(__name__)

INIT_NAMES = {"random": "random", "barlow": "Barlow Twins", "moco": "MoCo",
              "imagenet": "supervised ImageNet", "rckd": "RCKD"}
PAPER_COLUMNS = ("BACH", "CRC", "BreakHis", "Lymph", "BACH-WSI", "GlaS")
_P = {  # (backbone, init): (BACH, CRC, BreakHis, Lymph, BACH-WSI, GlaS) -- DESIGN.md section 2
    ("resnet18", "random"): (53.7, 80.2, 85.0, 63.7, 0.355, 0.830),
    ("resnet18", "barlow"): (71.4, 93.7, 93.8, 77.8, 0.400, 0.861),
    ("resnet18", "moco"): (59.7, 93.8, 96.9, 76.0, 0.391, 0.864),
    ("resnet18", "imagenet"): (74.4, 95.5, 95.5, 74.6, 0.373, 0.866),
    ("resnet18", "rckd"): (83.9, 95.0, 98.0, 93.8, 0.415, 0.915),
    ("csat", "random"): (41.3, 89.6, 83.7, 51.4, 0.355, 0.872),
    ("csat", "barlow"): (47.0, 90.2, 83.7, 53.9, 0.342, 0.810),
    ("csat", "moco"): (47.1, 90.6, 85.5, 52.6, 0.350, 0.783),
    ("csat", "imagenet"): (77.0, 95.8, 96.1, 76.5, 0.441, 0.902),
    ("csat", "rckd"): (90.6, 95.3, 98.6, 92.5, 0.435, 0.912),
}
#: The paper's table: PAPER[(backbone, init)][column] (accuracy in %, mIoU in [0, 1]).
PAPER: dict[tuple[str, str], dict[str, float]] = {k: dict(zip(PAPER_COLUMNS, v)) for k, v in _P.items()}


@dataclass(frozen=True)
class Column:
    """One dataset column: grid key, header, task, metric key and the paper column it matches."""

    key: str
    title: str
    task: str  # "classification" | "segmentation"
    metric: str = ""
    paper: str = ""

    @property
    def metric_key(self) -> str:
        return self.metric or ("accuracy" if self.task == "classification" else "miou")

    def scale(self) -> float:
        """Accuracy-like metrics are shown in %, IoU/Dice as fractions."""
        return 100.0 if self.metric_key in ("accuracy", "balanced_accuracy", "macro_f1") else 1.0


def collect(paths: Iterable[Path]) -> list[dict]:
    """Read results files into rows {backbone, init, dataset, seed, metrics, split_sizes}.

    ``results.json`` must carry ``grid`` tags (written by :mod:`rckd.reproduce`); a file that is
    not valid JSON raises ``ValueError`` naming it.
    """
    rows = []
    for path in sorted(paths):
        res = read_json(path)
        tag = res.get("grid")
        if not tag:
            log.warning("%s: no grid tags, skipped", path)
            continue
        rows.append({**tag, "metrics": res["metrics"], "split_sizes": res.get("split_sizes", {}),
                     "seconds": res.get("timings", {}).get("total_s", float("nan")), "path": str(path)})
    return rows


def _mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    v = [x for x in values if x is not None and math.isfinite(x)]
    if not v:
        return math.nan, math.nan, 0
    mean = sum(v) / len(v)
    std = math.sqrt(sum((x - mean) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return mean, std, len(v)


def summarise(rows: list[dict], columns: Sequence[Column], backbones: Sequence[str],
              inits: Sequence[str], split: str = "test") -> list[dict]:
    """One record per (backbone, init): per column mean/std/n (display units) and group averages."""
    values: dict[tuple, list[float]] = defaultdict(list)
    for r in rows:
        for col in columns:
            if r["dataset"] == col.key:
                m = r["metrics"].get(split, {}).get(col.metric_key)
                if m is not None:
                    values[(r["backbone"], r["init"], col.key)].append(float(m) * col.scale())
    out = []
    for b in backbones:
        for i in inits:
            rec = {"backbone": b, "init": i, "cells": {}}
            for col in columns:
                mean, std, n = _mean_std(values.get((b, i, col.key), []))
                paper = PAPER.get((b, i), {}).get(col.paper) if col.paper else None
                rec["cells"][col.key] = {"mean": mean, "std": std, "n": n, "paper": paper}
            for task in ("classification", "segmentation"):
                cols = [c for c in columns if c.task == task]
                means = [rec["cells"][c.key]["mean"] for c in cols]
                have = [m for m in means if math.isfinite(m)]
                rec[f"avg_{task}"] = sum(have) / len(have) if cols and len(have) == len(cols) else math.nan
            out.append(rec)
    return out


def paired_differences(rows: list[dict], columns: Sequence[Column], backbones: Sequence[str],
                       inits: Sequence[str], ref: str = "rckd", split: str = "test") -> list[dict]:
    """``ref`` minus each other init, seed by seed (same backbone, dataset and fine-tuning seed).

    One record per (backbone, other init): per column the mean/std/n of the per-seed differences
    (display units) and how many seeds ``ref`` won (``wins``).
    """
    value = {}
    for r in rows:
        for col in columns:
            m = r["metrics"].get(split, {}).get(col.metric_key) if r["dataset"] == col.key else None
            if m is not None:
                value[(r["backbone"], r["init"], col.key, r["seed"])] = float(m) * col.scale()
    out = []
    for b in backbones:
        for other in (i for i in inits if i != ref):
            rec = {"backbone": b, "init": other, "cells": {}}
            for col in columns:
                diffs = [value[(b, ref, col.key, s)] - v for (bb, i, k, s), v in value.items()
                         if (bb, i, k) == (b, other, col.key) and (b, ref, col.key, s) in value]
                mean, std, n = _mean_std(diffs)
                rec["cells"][col.key] = {"mean": mean, "std": std, "n": n, "wins": sum(d > 0 for d in diffs)}
            out.append(rec)
    return out


def render_paired(paired: list[dict], columns: Sequence[Column], ref: str = "rckd") -> str:
    """Markdown table of :func:`paired_differences` (rows without any pair are left out)."""
    rows = [p for p in paired if any(c["n"] for c in p["cells"].values())]
    if not rows:
        return ""
    name = INIT_NAMES.get(ref, ref)
    lines = [f"### {name} minus each other init, paired by fine-tuning seed", "",
             "| backbone | vs | " + " | ".join(c.title for c in columns) + " |",
             "|" + "---|" * (len(columns) + 2)]
    for p in rows:
        cells = []
        for c in columns:
            cell, s = p["cells"][c.key], c.scale()
            cells.append(f"{'+' if cell['mean'] > 0 else ''}{_fmt(cell['mean'], s)} ± {_fmt(cell['std'], s)} "
                         f"({cell['wins']}/{cell['n']} seeds)" if cell["n"] else "n/a")
        lines.append(f"| {p['backbone']} | {INIT_NAMES.get(p['init'], p['init'])} | " + " | ".join(cells) + " |")
    lines += ["", f"Cells: mean ± sample std over seeds of ({name} − init) on the same fine-tuning seed; "
              f"(k/n seeds): seeds where {name} was higher."]
    return "\n".join(lines) + "\n"


def render_pretraining(folders: Iterable[Path]) -> str:
    """Markdown table of finished pretraining runs: images seen, wall time, final loss and the
    health-probe curve (kNN / linear accuracy at each evaluation step), from each run folder's
    ``pretrain.json``, ``config.yaml`` and ``metrics.jsonl``."""
    import json

    import yaml

    lines = []
    for f in sorted(folders):
        if not (f / "pretrain.json").is_file():
            continue
        run = read_json(f / "pretrain.json")
        cfg = yaml.safe_load((f / "config.yaml").read_text()) if (f / "config.yaml").is_file() else {}
        rows = [json.loads(x) for x in (f / "metrics.jsonl").read_text().splitlines() if x.strip()] \
            if (f / "metrics.jsonl").is_file() else []
        probes = [r for r in rows if "probe/linear" in r]
        curve = ", ".join(f"{r['step']}: {100 * r['probe/knn']:.0f}/{100 * r['probe/linear']:.0f}"
                          for r in probes) or "—"
        seen = run["steps"] * cfg.get("batch_size", 0) * cfg.get("accum_steps", 1) * run.get("world_size", 1)
        loss = run.get("final", {}).get("train/loss", math.nan)
        lines.append(f"| {run['backbone']} | {INIT_NAMES.get(run['method'], run['method'])} | {seen:,} | "
                     f"{run['seconds'] / 60:.1f} | {run['images_per_s']:.1f} | {loss:.4f} | {curve} |")
    if not lines:
        return ""
    head = ["### Pretraining runs", "",
            "| backbone | method | images seen | wall min | images/s | final loss | probe kNN/linear % by step |",
            "|---|---|---:|---:|---:|---:|---|"]
    return "\n".join(head + lines) + ("\n\nWall time and images/s of the last invocation of each run "
                                       "(a resumed run counts only its own part).\n")


def _fmt(x: float, scale: float) -> str:
    return "—" if not math.isfinite(x) else (f"{x:.1f}" if scale > 1 else f"{x:.3f}")


def render_markdown(summary: list[dict], columns: Sequence[Column], title: str = "",
                    notes: Sequence[str] = ()) -> str:
    """The table in the paper's layout: cells 'mean ± std (n) [paper]'."""
    groups = [t for t in ("classification", "segmentation") if any(c.task == t for c in columns)]
    head = ["backbone", "init"]
    for t in groups:
        head += [c.title for c in columns if c.task == t] + [f"avg {'acc' if t == 'classification' else 'mIoU'}"]
    lines = [f"## {title}", ""] if title else []
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rec in summary:
        row = [rec["backbone"], INIT_NAMES.get(rec["init"], rec["init"])]
        for t in groups:
            for c in (c for c in columns if c.task == t):
                cell = rec["cells"][c.key]
                s = c.scale()
                text = (f"{_fmt(cell['mean'], s)} ± {_fmt(cell['std'], s)} (n={cell['n']})"
                        if cell["n"] else "n/a")
                if cell["paper"] is not None:
                    text += f" [{_fmt(cell['paper'], s)}]"
                row.append(text)
            row.append(_fmt(rec[f"avg_{t}"], 100.0 if t == "classification" else 1.0))
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Cells: mean ± sample std over seeds (n = seeds), test split; [paper value] where the "
              "paper has that column (accuracy in %, mIoU as a fraction)."]
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def render_csv(summary: list[dict], columns: Sequence[Column]) -> str:
    """Long format: backbone, init, dataset, metric, mean, std, n, paper."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["backbone", "init", "dataset", "metric", "mean", "std", "n", "paper"])
    for rec in summary:
        for c in columns:
            cell = rec["cells"][c.key]
            w.writerow([rec["backbone"], rec["init"], c.key, c.metric_key,
                        "" if not math.isfinite(cell["mean"]) else f"{cell['mean']:.6g}",
                        "" if not math.isfinite(cell["std"]) else f"{cell['std']:.6g}", cell["n"],
                        "" if cell["paper"] is None else cell["paper"]])
    return buf.getvalue()


def render_chart(summary: list[dict], columns: Sequence[Column], path: Path, title: str = "") -> Path:
    """Grouped bars (mean ± std) per dataset and init, paper values as black diamonds."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backbones = list(dict.fromkeys(r["backbone"] for r in summary))
    inits = list(dict.fromkeys(r["init"] for r in summary))
    fig, axes = plt.subplots(len(backbones), len(columns), squeeze=False,
                             figsize=(2.6 * len(columns) + 1, 2.6 * len(backbones) + 0.6))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for bi, b in enumerate(backbones):
        for ci, c in enumerate(columns):
            ax = axes[bi][ci]
            for k, init in enumerate(inits):
                rec = next(r for r in summary if r["backbone"] == b and r["init"] == init)
                cell = rec["cells"][c.key]
                if cell["n"]:
                    ax.bar(k, cell["mean"], yerr=cell["std"], color=colours[k % len(colours)], capsize=3)
                if cell["paper"] is not None:
                    ax.plot(k, cell["paper"], "kD", ms=4)
            ax.set_xticks(range(len(inits)), [INIT_NAMES.get(i, i)[:8] for i in inits], rotation=45,
                          fontsize=7)
            ax.set_title(f"{b}: {c.title}", fontsize=8)
            ax.tick_params(axis="y", labelsize=7)
    fig.suptitle(f"{title}\n(bars: mean ± std over seeds; black diamonds: paper)" if title else
                 "bars: mean ± std over seeds; black diamonds: paper", fontsize=8, wrap=True)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def write_report(rows: list[dict], columns: Sequence[Column], backbones: Sequence[str],
                 inits: Sequence[str], out: Path, title: str = "", notes: Sequence[str] = ()) -> dict:
    """Write ``table.md``, ``table.csv`` and ``table.png`` under ``out``; return the summary.

    Below the table: RCKD's paired differences (when RCKD is in the grid) and the pretraining
    runs found under ``out/pretrain/<backbone>/<method>``.
    """
    summary = summarise(rows, columns, backbones, inits)
    markdown = render_markdown(summary, columns, title, notes)
    if "rckd" in inits:
        paired = render_paired(paired_differences(rows, columns, backbones, inits), columns)
        markdown += "\n" + paired if paired else ""
    runs = render_pretraining(f for b in backbones for f in (out / "pretrain" / b).glob("*")
                              if f.name in inits)
    markdown += "\n" + runs if runs else ""
    atomic_write_text(out / "table.md", markdown)
    atomic_write_text(out / "table.csv", render_csv(summary, columns))
    render_chart(summary, columns, out / "table.png", title)
    return {"summary": summary, "markdown": (out / "table.md").read_text()}
