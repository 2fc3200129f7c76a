"""What a tiling run leaves for people: thumbnails, per-slide state files and ``summary.md``.

The thumbnail shows the slide with non-tissue dimmed, the tissue outline in green and every kept
tile as a blue square. The state file of a slide records what was done (status ``running``,
``done``, ``no_tissue`` or ``failed``), with the settings and slide fingerprint that resume
checks. The summary is rebuilt from all state files of the folder, so shards never collide.
"""

from __future__ import annotations

import datetime as _dt
import resource
from pathlib import Path

import numpy as np
from PIL import Image

from rckd.io import atomic_path, atomic_write_text, read_json, write_json

__all__ = ["render_thumbnail", "save_thumbnail", "write_state", "read_state", "write_summary",
           "peak_memory_mib", "now"]

STATUSES = ("running", "done", "no_tissue", "failed")
DIM = (np.arange(256) * 0.45 + 40).astype(np.uint8)  # non-tissue pixels on the thumbnail


def now() -> str:
    """UTC timestamp, ISO 8601 to the second."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def peak_memory_mib() -> float:
    """Peak resident memory so far of this process and its finished children, MiB (Linux)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, kids) / 1024.0, 1)


def render_thumbnail(thumb: np.ndarray, mask: np.ndarray, coords: np.ndarray, size_level0: int,
                     slide_size: tuple[int, int], max_side: int = 1024) -> Image.Image:
    """The slide thumbnail with the tissue mask and the tile grid drawn on it."""
    img = Image.fromarray(thumb)
    scale = min(1.0, max_side / max(img.size))
    if scale < 1.0:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.BOX)
    m = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(img.size, Image.Resampling.NEAREST)) > 0
    arr = np.array(img)
    np.copyto(arr, DIM[arr], where=~m[..., None])
    arr[_edge(m)] = (0, 200, 0)
    coords = np.asarray(coords, np.float64).reshape(-1, 2)
    sx, sy = arr.shape[1] / slide_size[0], arr.shape[0] / slide_size[1]
    x0, y0 = np.floor(coords[:, 0] * sx).astype(np.int64), np.floor(coords[:, 1] * sy).astype(np.int64)
    x1 = np.maximum(x0, np.floor((coords[:, 0] + size_level0) * sx).astype(np.int64) - 1)
    y1 = np.maximum(y0, np.floor((coords[:, 1] + size_level0) * sy).astype(np.int64) - 1)
    arr[_outlines(arr.shape[:2], x0, y0, x1, y1)] = (30, 80, 255)
    return Image.fromarray(arr)


def _edge(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it (the image border counts as outside)."""
    p = np.pad(mask, 1)
    inner = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return mask & ~inner


def _outlines(shape: tuple[int, int], x0, y0, x1, y1) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of the outline pixels of rectangles with inclusive corners, all at once."""
    h, w = shape
    x0, x1 = np.clip(x0, 0, w - 1), np.clip(x1, 0, w - 1)
    y0, y1 = np.clip(y0, 0, h - 1), np.clip(y1, 0, h - 1)
    xs, ys = _ranges(x0, x1), _ranges(y0, y1)
    across, down = x1 - x0 + 1, y1 - y0 + 1
    rows = np.concatenate([np.repeat(y0, across), np.repeat(y1, across), ys, ys])
    cols = np.concatenate([xs, xs, np.repeat(x0, down), np.repeat(x1, down)])
    return rows, cols


def _ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``arange(s, e + 1)`` for every pair, concatenated, without a Python loop."""
    lengths = ends - starts + 1
    return np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())


def save_thumbnail(img: Image.Image, path: str | Path) -> Path:
    """Write a JPEG atomically (a PNG of a 1024-px thumbnail costs ~25x the time)."""
    with atomic_path(path) as tmp:
        img.save(tmp, format="JPEG", quality=90)
    return Path(path)


def write_state(path: str | Path, state: dict) -> Path:
    """Write a slide's state JSON atomically (adds ``updated``)."""
    if state.get("status") not in STATUSES:
        raise ValueError(f"unknown state status {state.get('status')!r}")
    return write_json(path, {**state, "updated": now()})


def read_state(path: str | Path) -> dict | None:
    """A slide's state, or None when absent or unreadable (then the slide is redone)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = read_json(path)
    except (ValueError, OSError):
        return None
    return state if isinstance(state, dict) else None


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def write_summary(run_dir: str | Path) -> Path:
    """Rebuild ``summary.md`` from every state file under ``run_dir/state``."""
    run_dir = Path(run_dir)
    states = [read_state(p) for p in sorted((run_dir / "state").glob("*.json"))]
    states = [s for s in states if s]
    lines = [f"# Tiling summary: {run_dir.name}", "",
             f"{len(states)} slides; updated {now()}.", "",
             "| slide | status | tiles | tissue % | level-0 mpp | seconds | tiles/s | peak MiB | note |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    totals = {"tiles": 0, "seconds": 0.0}
    for s in states:
        note = s.get("error") or ""
        if s.get("status") == "no_tissue":
            note = "no tissue found: no tile file written"
        if s.get("failed_tiles"):
            note = (note + "; " if note else "") + f"{len(s['failed_tiles'])} unreadable tiles skipped"
        note = note.replace("|", "/").replace("\n", " ")
        frac = s.get("tissue_fraction")
        lines.append(f"| {s.get('name', '?')} | {s.get('status', '?')} | {s.get('n_tiles', 0)} | "
                     f"{_fmt(None if frac is None else 100 * frac)} | {_fmt(s.get('level0_mpp'), 4)} | "
                     f"{_fmt(s.get('seconds'), 2)} | {_fmt(s.get('tiles_per_s'))} | "
                     f"{_fmt(s.get('peak_mib'))} | {note} |")
        totals["tiles"] += int(s.get("n_tiles") or 0)
        totals["seconds"] += float(s.get("seconds") or 0.0)
    counts = {k: sum(1 for s in states if s.get("status") == k) for k in STATUSES}
    lines += ["", f"Total: {totals['tiles']} tiles in {totals['seconds']:.1f} s; "
              + ", ".join(f"{v} {k}" for k, v in counts.items() if v) + ".", ""]
    return atomic_write_text(run_dir / "summary.md", "\n".join(lines))
