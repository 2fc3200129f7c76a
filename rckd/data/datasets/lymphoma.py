"""Malignant lymphoma (IICBU 2008, Shamir et al.): CLL / FL / MCL, 374 images 1388x1040 .tif.

Official layout: ``<root>/{CLL,FL,MCL}/*.tif`` (113 / 139 / 122 images), optionally under a
``lymphoma/`` folder. No official split and no patient id: train/val/test are carved 60/20/20 per
class by image. The release does not state the pixel size; 0.5 um/px (a 20x brightfield
objective) is assumed at the original width of 1388 px. Redistributed copies are often
downscaled (e.g. to 417x312): ``mpp`` scales with the width of the first image, so resampling to
an ``input_mpp`` shows every copy the same tissue scale.
"""

from __future__ import annotations

from functools import cached_property

from PIL import Image

from rckd.data.datasets.folders import ClassFolderDataset

__all__ = ["Lymphoma"]

ORIGINAL_WIDTH = 1388
ORIGINAL_MPP = 0.5  # assumed: not stated by the release


class Lymphoma(ClassFolderDataset):
    """Lymphoma subtype classification, 3 classes."""

    FOLDERS = ("CLL", "FL", "MCL")
    classes = ("CLL", "FL", "MCL")
    ROOT_NAMES = ("lymphoma",)
    SUFFIXES = (".tif", ".tiff", ".png")
    OFFICIAL_COUNTS = {"all": 374}
    OFFICIAL_CLASS_COUNTS = {"CLL": 113, "FL": 139, "MCL": 122}

    @cached_property
    def mpp(self) -> float:  # type: ignore[override]
        """Microns per pixel: the assumed 0.5 at 1388 px wide, scaled by this copy's width."""
        with Image.open(self.items[0].path) as im:
            return ORIGINAL_MPP * ORIGINAL_WIDTH / im.width
