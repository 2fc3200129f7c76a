"""``rckd doctor``: what this installation can do, and what it finds on disk.

Reports library versions (torch and its CUDA devices, torchvision, timm, kornia, OpenSlide's C
library, h5py), the datasets found under the data root and the weight files the teacher registry
points to. It never downloads anything and never fails on a missing optional piece: it says so.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import platform
from pathlib import Path

from rckd.config import Config, option
from rckd.paths import data_root

__all__ = ["DoctorConfig", "collect_report", "DATASET_FOLDERS"]

log = logging.getLogger(__name__)

#: Where each dataset is looked for under the data root (first match wins).
DATASET_FOLDERS: dict[str, tuple[str, ...]] = {
    "monuseg": ("monuseg/train", "monuseg", "MoNuSeg"),
    "glas": ("glas", "GlaS", "Warwick_QU_Dataset"),
    "crchisto": ("crchistophenotypes", "CRCHistoPhenotypes_2016_04_28"),
    "kather2016": ("kather2016", "samples/kather2016", "Kather_texture_2016_image_tiles_5000"),
    "nct_crc_he": ("NCT-CRC-HE-100K", "nct_crc_he", "samples/nct_crc_he"),
    "breakhis": ("BreaKHis_v1", "breakhis", "samples/breakhis"),
    "bach": ("ICIAR2018_BACH_Challenge", "bach", "BACH"),
    "lymphoma": ("lymphoma", "Lymphoma"),
    "wsi": ("wsi",),
}


@dataclasses.dataclass
class DoctorConfig(Config):
    """Report library versions, devices, datasets and weight files found."""

    data_root: str = option(default_factory=lambda: str(data_root()),
                            help="folder holding the datasets ($RCKD_DATA, else ../shared/data "
                                 "beside the rckd checkout)")


def _version(module: str, attr: str = "__version__") -> str:
    try:
        return str(getattr(importlib.import_module(module), attr))
    except Exception as exc:  # noqa: BLE001 - the doctor reports every failure as text
        return f"unavailable ({type(exc).__name__}: {exc})"


def _torch_lines() -> list[tuple[str, str]]:
    import torch

    lines = [("torch", torch.__version__),
             ("torch threads", str(torch.get_num_threads())),
             ("CUDA available", str(torch.cuda.is_available()))]
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        lines.append((f"cuda:{i}", f"{props.name}, {props.total_memory / 2**30:.0f} GiB"))
    return lines


def _datasets(root: Path) -> list[tuple[str, str]]:
    lines = []
    for name, candidates in DATASET_FOLDERS.items():
        found = next((root / c for c in candidates if (root / c).is_dir()), None)
        lines.append((f"dataset {name}", str(found) if found else "not found"))
    return lines


def _teachers() -> list[tuple[str, str]]:
    try:
        from rckd.models.teachers.registry import teacher_status
    except ImportError as exc:
        return [("teachers", f"registry unavailable ({exc})")]
    return [(f"teacher {name}", status) for name, status in teacher_status()]


def collect_report(cfg: DoctorConfig) -> list[tuple[str, str]]:
    """Return the doctor's report as (item, finding) pairs."""
    from rckd import __version__

    lines = [("rckd", __version__), ("python", platform.python_version()),
             ("platform", platform.platform())]
    lines += _torch_lines()
    lines += [("torchvision", _version("torchvision")), ("timm", _version("timm")),
              ("kornia", _version("kornia")), ("h5py", _version("h5py")),
              ("openslide-python", _version("openslide")),
              ("OpenSlide library", _version("openslide", "__library_version__"))]
    root = Path(cfg.data_root)
    lines.append(("data root", f"{root.resolve()}" + ("" if root.is_dir() else " (missing)")))
    lines += _datasets(root)
    lines += _teachers()
    return lines
