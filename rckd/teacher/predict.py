"""``rckd teacher predict``: cache a teacher's responses for tile sets or image folders.

Inputs are h5 tile sets from ``rckd tile`` (a file, or a folder of them) or folders of images
(``--mpp`` and ``--size`` required). One cache per input is written to ``<out>/<stem>.h5``:

- ``responses`` (N, H, W) uint8: nuclei probability x 255, rounded (rows in the input's order);
- ``coords`` (N, 2) int64 for tile sets; ``names`` (N,) for image folders;
- attributes ``teacher``, ``teacher_mpp``, ``mpp``, ``source``, ``n``, ``done``, ``quantisation``.

The cache is filled in batches into ``<stem>.h5.partial``, whose ``done`` attribute counts the
finished rows; an interrupted run resumes there (same teacher and shape), and the file is
renamed to ``<stem>.h5`` when complete. An overlay panel (tile | response | overlay) of a sample
of tiles is written as ``<stem>_panel.png``. This layout is what
:class:`rckd.pretrain.cache.CachedResponses` reads.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from rckd.config import RunConfig, option, save_config
from rckd.io import atomic_path, safe_name
from rckd.models.teachers.base import TTA_VIEWS

__all__ = ["PredictConfig", "predict_responses", "overlay_panel", "predict_dataset"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class PredictConfig(RunConfig):
    """Cache a teacher's nuclei responses (uint8) for h5 tile sets or image folders, plus a PNG panel."""

    DEFAULTS = {"out": "runs/responses"}

    inputs: list[str] = option(default_factory=list, positional=True,
                               help="h5 tile sets, folders of them, or folders of images")
    teacher: str = option("default", help="teacher name ('default', 'classical') or checkpoint path")
    mpp: float | None = option(None, gt=0, help="microns per pixel of image folders; for tile sets, the level-0 "
                               "mpp of slides whose file states none (CLAM and TRIDENT tile sets do not "
                               "record it)")
    size: int | None = option(None, ge=1, help="tile side for image folders (required for them); "
                                               "tile sets: their size")
    slide_root: str | None = option(None, help="where to find slides for tile sets without stored pixels")
    batch_size: int = option(16, ge=1, help="tiles per teacher call")
    tta: int | None = option(None, choices=TTA_VIEWS,
                             help="dihedral test-time views (none: the teacher's own setting)")
    panel: int = option(8, ge=0, help="tiles shown in the overlay panel (0: no panel)")


def _is_tile_sets(path: Path) -> bool:
    return path.suffix == ".h5" or (path.is_dir() and (any(path.glob("*.h5")) or (path / "patches").is_dir()))


def _datasets(cfg: PredictConfig) -> list[tuple[str, object, str]]:
    """``(stem, dataset, kind)`` per input; tile-set folders give one entry per h5 file."""
    from rckd.data.tiles import H5TileDataset, ImageFolderTiles
    out = []
    for item in cfg.inputs:
        path = Path(item)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such tile set or folder")
        if _is_tile_sets(path):
            files = [path] if path.is_file() else (sorted(path.glob("*.h5")) or sorted((path / "patches").glob("*.h5")))
            for f in files:
                out.append((safe_name(f.stem), H5TileDataset(f, slide_root=cfg.slide_root, size=cfg.size,
                                                             slide_mpp=cfg.mpp), "tiles"))
        else:
            if cfg.mpp is None or cfg.size is None:
                raise ValueError(f"{path}: an image folder needs --mpp and --size")
            out.append((safe_name(path.name), ImageFolderTiles(path, cfg.size, cfg.mpp), "images"))
    if not out:
        raise ValueError("no inputs: give h5 tile sets or image folders")
    return out


def _dataset_mpp(ds) -> float:
    mpp = getattr(ds, "mpp", None)
    if not mpp or not mpp > 0:
        raise ValueError("input has no mpp: rckd tile sets record it; image folders, and CLAM or TRIDENT "
                         "tile sets of slides without one, need --mpp")
    return float(mpp)


# attributes (with defaults) that must match for a partial cache to be resumed
_IDENTITY = {"teacher": "", "teacher_sha256": "", "teacher_tta": 1}


def _open_partial(path: Path, n: int, hw: tuple[int, int], attrs: dict):
    """Open (resume) or create the partial cache; returns the h5 file and the rows done."""
    import h5py
    if path.is_file():
        try:
            h = h5py.File(path, "a")
            same = h["responses"].shape == (n, *hw) and all(
                h.attrs.get(k, d) == attrs.get(k, d) for k, d in _IDENTITY.items())
            if same:
                return h, int(h.attrs.get("done", 0))
            h.close()
        except (OSError, KeyError):
            pass
        log.warning("%s: partial cache does not match (teacher, tta or shape); starting again", path)
        path.unlink()
    h = h5py.File(path, "w")
    h.create_dataset("responses", shape=(n, *hw), dtype="uint8", chunks=(1, *hw), compression="gzip",
                     compression_opts=4)
    for k, v in attrs.items():
        h.attrs[k] = v
    h.attrs["done"] = 0
    return h, 0


def _check_complete(path: Path, attrs: dict) -> None:
    """A finished cache is reused only if the same teacher (weights, mpp, views) made it."""
    import h5py

    with h5py.File(path, "r") as h:
        saved = {k: h.attrs.get(k) for k in ("teacher_sha256", "teacher_tta", "teacher_mpp")}
    for key, value in saved.items():
        want = attrs.get(key)
        if isinstance(value, bytes):
            value = value.decode()
        if value is None or (value != want if not isinstance(want, float) else abs(float(value) - want) > 1e-9):
            raise ValueError(f"{path}: complete cache made with {key}={value!r}, this run has {want!r}; "
                             "use another --out (caches are not mixed)")


def predict_dataset(teacher, ds, path: Path, attrs: dict, batch_size: int = 16,
                    extra: dict | None = None) -> Path:
    """Fill ``path`` (final name) with ``teacher``'s responses for ``ds``; resumable."""
    mpp = _dataset_mpp(ds)
    n = len(ds)
    first = ds[0]["image"]
    hw = tuple(first.shape[-2:])
    partial = path.with_name(path.name + ".partial")
    h, done = _open_partial(partial, n, hw, {**attrs, "mpp": mpp, "n": n})
    if done:
        log.info("%s: resuming at row %d of %d", partial, done, n)
    try:
        for k, v in (extra or {}).items():
            if k not in h:
                h.create_dataset(k, data=v)
        for start in tqdm(range(done, n, batch_size), desc=path.stem, unit="batch", disable=None,
                          mininterval=2.0, leave=False):
            stop = min(n, start + batch_size)
            images = torch.stack([ds[i]["image"] for i in range(start, stop)])
            with torch.no_grad():
                r = teacher.response(images, mpp)[:, 0].float()
            h["responses"][start:stop] = r.mul(255).round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()
            h.attrs["done"] = stop
            h.flush()
    finally:
        h.close()
    os.replace(partial, path)
    return path


def overlay_panel(images: list[np.ndarray], responses: list[np.ndarray], path: str | Path) -> Path:
    """Write a PNG: one row per tile, columns tile | response (grey) | overlay (response in green)."""
    rows = []
    for img, r in zip(images, responses):
        r = r.astype(np.float32) / 255.0 if r.dtype == np.uint8 else r
        grey = np.repeat((r * 255).astype(np.uint8)[..., None], 3, axis=2)
        over = img.astype(np.float32).copy()
        over[..., 1] = over[..., 1] * (1 - 0.6 * r) + 255 * 0.6 * r
        over[..., 0] *= 1 - 0.4 * r
        over[..., 2] *= 1 - 0.4 * r
        gap = np.full((img.shape[0], 4, 3), 255, np.uint8)
        rows.append(np.concatenate([img, gap, grey, gap, over.clip(0, 255).astype(np.uint8)], axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    with atomic_path(path) as tmp:
        Image.fromarray(np.concatenate(rows, axis=0)).save(tmp, format="PNG")
    return Path(path)


def _panel(ds, cache: Path, path: Path, count: int) -> None:
    import h5py
    idx = np.unique(np.linspace(0, len(ds) - 1, num=min(count, len(ds))).round().astype(int))
    with h5py.File(cache, "r") as h:
        responses = [h["responses"][int(i)] for i in idx]
    images = [ds[int(i)]["image"].permute(1, 2, 0).numpy() for i in idx]
    overlay_panel(images, responses, path)


def predict_responses(cfg: PredictConfig) -> int:
    """CLI entry: one response cache (+ panel) per input; finished caches are skipped."""
    from rckd.models.teachers.registry import get_teacher

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "predict_config.yaml")
    inputs = _datasets(cfg)  # bad inputs fail before the teacher loads
    teacher = get_teacher(cfg.teacher, device=cfg.device, tta=cfg.tta)
    attrs = {"teacher": cfg.teacher, "teacher_mpp": float(teacher.mpp),
             "teacher_sha256": teacher.weights_sha256, "teacher_tta": int(teacher.tta),
             "quantisation": "uint8 = round(probability x 255)"}
    for stem, ds, kind in inputs:
        path = out / f"{stem}.h5"
        if path.is_file():
            _check_complete(path, attrs)
            log.info("%s: already complete (same teacher), skipped", path)
            continue
        extra = ({"coords": np.asarray(ds.infos[0].coords, dtype=np.int64)} if kind == "tiles"
                 else {"names": np.array([str(p.relative_to(ds.root)) for p in ds.files], dtype="S")})
        predict_dataset(teacher, ds, path, {**attrs, "source": str(cfg.inputs)}, cfg.batch_size, extra)
        if cfg.panel:
            _panel(ds, path, out / f"{stem}_panel.png", cfg.panel)
        log.info("%s: %d responses", path, len(ds))
    return 0
