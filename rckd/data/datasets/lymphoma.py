"""Malignant lymphoma (IICBU 2008, Shamir et al.): CLL / FL / MCL, 374 images 1388x1040 .tif.

Official layout: ``<root>/{CLL,FL,MCL}/*.tif`` (113 / 139 / 122 images), optionally under a
``lymphoma/`` folder. No official split and no patient id: train/val/test are carved 60/20/20 per
class by image. The release does not state the pixel size; ``mpp`` is the usual 20x brightfield
value and only informs resampling.
"""

from __future__ import annotations

from rckd.data.datasets.folders import ClassFolderDataset

__all__ = ["Lymphoma"]


class Lymphoma(ClassFolderDataset):
    """Lymphoma subtype classification, 3 classes."""

    FOLDERS = ("CLL", "FL", "MCL")
    classes = ("CLL", "FL", "MCL")
    ROOT_NAMES = ("lymphoma",)
    SUFFIXES = (".tif", ".tiff", ".png")
    mpp = 0.5  # not stated by the release (20x objective); assumed
    OFFICIAL_COUNTS = {"all": 374}
    OFFICIAL_CLASS_COUNTS = {"CLL": 113, "FL": 139, "MCL": 122}
