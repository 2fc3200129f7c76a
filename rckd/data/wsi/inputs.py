"""Slide inputs: files, folders, glob patterns and CSV lists (path, optional mpp and label).

Every input becomes a :class:`SlideInput` with a unique output name (``rckd.io.safe_name`` of
the file stem); an input that yields none (an empty folder, a CSV without rows, a pattern that
matches nothing) is an error naming it. A CSV needs a path column (``path``, ``slide_path``,
``slide``, ``filename`` or ``file``) and may have ``mpp`` and ``label`` columns; relative paths
are resolved against the CSV's folder. The list is sorted and de-duplicated, so ``--shard i/n`` splits it the same way on
every machine.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
from pathlib import Path

from rckd.data.wsi.reader import IMAGE_SUFFIXES, SLIDE_SUFFIXES
from rckd.io import safe_name

__all__ = ["SlideInput", "collect_inputs", "shard", "parse_shard"]

PATH_COLUMNS = ("path", "slide_path", "slide", "filename", "file")
SUFFIXES = tuple(sorted(set(SLIDE_SUFFIXES + IMAGE_SUFFIXES)))


@dataclasses.dataclass(frozen=True)
class SlideInput:
    """One slide to tile: its file, output name, and optional mpp / label from a CSV."""

    path: Path
    name: str
    mpp: float | None = None
    label: str | None = None


def _from_csv(csv_path: Path) -> list[SlideInput]:
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        fields = {c.strip().lower(): c for c in (reader.fieldnames or [])}
        col = next((fields[c] for c in PATH_COLUMNS if c in fields), None)
        if col is None:
            raise ValueError(f"{csv_path}: no path column (expected one of {', '.join(PATH_COLUMNS)})")
        out = []
        for line, row in enumerate(reader, start=2):
            raw = (row.get(col) or "").strip()
            if not raw:
                continue
            path = Path(raw).expanduser()
            if not path.is_absolute():
                path = csv_path.parent / path
            mpp = _mpp(row.get(fields.get("mpp", ""), ""), csv_path, line)
            label = (row.get(fields.get("label", ""), "") or "").strip() or None
            if not path.exists():
                raise FileNotFoundError(f"{csv_path}:{line}: slide not found: {path}")
            out.append(SlideInput(path, safe_name(path.stem), mpp, label))
    if not out:
        raise ValueError(f"{csv_path}: lists no slides (column {col!r} is empty)")
    return out


def _mpp(raw, csv_path: Path, line: int) -> float | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{csv_path}:{line}: mpp {raw!r} is not a number") from None
    if value <= 0:
        raise ValueError(f"{csv_path}:{line}: mpp must be positive, got {value}")
    return value


def _from_folder(folder: Path) -> list[SlideInput]:
    files = [p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in SUFFIXES
             and not p.name.startswith(".")]
    if not files:
        raise FileNotFoundError(f"{folder}: a folder without slide files ({' '.join(SUFFIXES)})")
    return [SlideInput(p, safe_name(p.stem)) for p in files]


def collect_inputs(items: list[str] | tuple[str, ...]) -> list[SlideInput]:
    """Expand files, folders, globs and CSVs into a sorted list of unique slides."""
    found: list[SlideInput] = []
    for item in items:
        path = Path(item).expanduser()
        if path.suffix.lower() == ".csv" and path.is_file():
            found.extend(_from_csv(path))
        elif path.is_dir():
            found.extend(_from_folder(path))
        elif path.is_file():
            found.append(SlideInput(path, safe_name(path.stem)))
        elif glob.has_magic(item):
            matches = sorted(Path(p) for p in glob.glob(str(path)))
            files = [p for p in matches if p.is_file() and p.suffix.lower() in SUFFIXES]
            if not files:
                raise FileNotFoundError(f"{item}: no slides match this pattern")
            found.extend(SlideInput(p, safe_name(p.stem)) for p in files)
        else:
            raise FileNotFoundError(f"{item}: no such slide, folder or CSV")
    unique: dict[Path, SlideInput] = {}
    for inp in found:
        key = inp.path.resolve()
        if key not in unique or (unique[key].mpp is None and inp.mpp is not None):
            unique[key] = inp
    slides = sorted(unique.values(), key=lambda s: (s.name, str(s.path)))
    names: dict[str, Path] = {}
    for s in slides:
        if s.name in names:
            raise ValueError(f"{s.path}: output name {s.name!r} is also used by {names[s.name]}; "
                             "rename one of them")
        names[s.name] = s.path
    return slides


def parse_shard(spec: str) -> tuple[int, int]:
    """Parse ``"i/n"`` (0 <= i < n); the empty string means ``(0, 1)``."""
    if not spec:
        return 0, 1
    try:
        i, n = (int(v) for v in spec.split("/"))
    except ValueError:
        raise ValueError(f"--shard {spec!r}: expected i/n, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {spec!r}: need 0 <= i < n")
    return i, n


def shard(slides: list[SlideInput], index: int, count: int) -> list[SlideInput]:
    """The ``index``-th of ``count`` interleaved shards of a sorted slide list."""
    return slides[index::count]
