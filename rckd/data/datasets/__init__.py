"""Downstream benchmark datasets in their official layouts, behind one registry.

``get_dataset(name, root, split, **kwargs)`` returns a torch ``Dataset`` of sample dicts
(``"image"`` uint8 (3, H, W), ``"label"`` int or ``"mask"`` int64 (H, W)) with ``.classes``,
``.mpp`` and ``.task``. Names (see :data:`DATASETS`):

==============  =======================================================  ==============
name            what                                                      task
==============  =======================================================  ==============
bach            BACH microscopy photos, 4 classes                         classification
bach_wsi        BACH annotated whole slides, 4-class masks, tiled         segmentation
kather2016      Kather 2016 colorectal textures, 8 classes                classification
nct_crc         NCT-CRC-HE-100K / CRC-VAL-HE-7K, 9 classes                classification
breakhis        BreakHis v1, binary (``labels="subtype"``: 8 classes)     classification
lymphoma        Lymphoma CLL / FL / MCL                                   classification
glas            GlaS gland masks (0/1)                                    segmentation
glas_grade      GlaS benign / malignant grade                             classification
crchisto        CRCHistoPhenotypes nucleus-type crops, 4 classes          classification
monuseg         MoNuSeg nuclei foreground masks, split by image           segmentation
synthetic       the synthetic world's tissue classes (root ignored)       classification
synthetic_seg   the synthetic world's gland masks (root ignored)          segmentation
==============  =======================================================  ==============

Every split is declared in the dataset's module docstring (official where the release has one,
otherwise carved deterministically by patient/image with a seed).
"""

from __future__ import annotations

import importlib
import inspect
import typing
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple

from rckd.config.values import Invalid, check, convert, did_you_mean

__all__ = ["DATASETS", "DatasetSpec", "get_dataset", "dataset_task", "check_dataset_options"]


class DatasetSpec(NamedTuple):
    """Where a dataset lives and the keyword arguments its name implies."""

    target: str  # "module:Class"
    task: str
    kwargs: dict


DATASETS: dict[str, DatasetSpec] = {
    "bach": DatasetSpec("rckd.data.datasets.bach:Bach", "classification", {}),
    "bach_wsi": DatasetSpec("rckd.data.datasets.bach:BachWSI", "segmentation", {}),
    "kather2016": DatasetSpec("rckd.data.datasets.crc:Kather2016", "classification", {}),
    "nct_crc": DatasetSpec("rckd.data.datasets.crc:NCTCRC", "classification", {}),
    "breakhis": DatasetSpec("rckd.data.datasets.breakhis:BreakHis", "classification", {}),
    "lymphoma": DatasetSpec("rckd.data.datasets.lymphoma:Lymphoma", "classification", {}),
    "glas": DatasetSpec("rckd.data.datasets.glas:GlaS", "segmentation", {"task": "segmentation"}),
    "glas_grade": DatasetSpec("rckd.data.datasets.glas:GlaS", "classification", {"task": "grade"}),
    "crchisto": DatasetSpec("rckd.data.datasets.crchisto:CRCHisto", "classification", {}),
    "monuseg": DatasetSpec("rckd.data.datasets.monuseg_split:monuseg_split", "segmentation", {}),
    "synthetic": DatasetSpec("rckd.data.datasets.synthetic_split:synthetic_split", "classification",
                             {"task": "classification"}),
    "synthetic_seg": DatasetSpec("rckd.data.datasets.synthetic_split:synthetic_split", "segmentation",
                                 {"task": "segmentation"}),
}


def dataset_task(name: str) -> str:
    """'classification' or 'segmentation' for a registered dataset name."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})")
    return DATASETS[name].task


def _factory(name: str) -> Callable:
    spec = DATASETS.get(name)
    if spec is None:
        raise ValueError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})")
    module_name, attr = spec.target.split(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"dataset {name!r} is not available: {exc}") from None


def check_dataset_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` of dataset ``name`` checked against its constructor's typed parameters.

    The constructor declares the options once; a name it does not take or a value that does not
    fit its annotation raises ``ValueError`` (``dataset_options.crop: ...``). Returns the
    converted options.
    """
    factory = _factory(name)
    params = inspect.signature(factory).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return dict(options)
    hints = typing.get_type_hints(factory)
    takes = [p for p in params if p not in ("root", "split")]
    out = {}
    for key, value in options.items():
        if key not in takes or key in DATASETS[name].kwargs:
            raise ValueError(f"dataset_options.{key}: dataset {name!r} does not take option {key!r}"
                             f"{did_you_mean(str(key), takes)}")
        try:
            out[key] = check(convert(value, hints.get(key, Any)), {})
        except Invalid as exc:
            raise ValueError(f"dataset_options.{key}: {exc.problem}") from None
    return out


def get_dataset(name: str, root: str | Path | None, split: str = "train", **kwargs):
    """Build the registered dataset ``name`` at ``root`` for ``split``.

    Extra keyword arguments go to the dataset's constructor, checked by
    :func:`check_dataset_options` (so a typo in a config never passes silently).
    """
    factory = _factory(name)
    merged = {**DATASETS[name].kwargs, **check_dataset_options(name, kwargs)}
    if name.startswith("synthetic"):
        return factory(split=split, **merged)
    if root is None:
        raise ValueError(f"dataset {name!r} needs a root folder")
    return factory(Path(root), split=split, **merged)
