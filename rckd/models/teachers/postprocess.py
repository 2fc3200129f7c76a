"""From per-pixel maps to nuclei instances (marker-controlled watershed).

Two separations, both with sizes in microns so they hold at any resolution:

- :func:`instances_from_boundary` (learned teacher): markers are the connected regions where
  ``prob - boundary`` is high; the watershed grows them over ``-(prob - boundary)`` inside the
  foreground ``prob > fg_threshold``; foreground left without a marker (clusters of small nuclei
  whose interior the boundary covers) is split by :func:`instances_from_mask`.
- :func:`instances_from_mask` (classical teacher): markers are the peaks of the (smoothed)
  distance transform of a binary mask, at least ``min_distance_um`` apart.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.measure import label
from skimage.segmentation import watershed

__all__ = ["instances_from_boundary", "instances_from_mask", "px_area", "remove_small"]


def px_area(area_um2: float, mpp: float) -> int:
    """An area in square microns as a pixel count at ``mpp`` (at least 1)."""
    return max(1, int(round(area_um2 / (mpp * mpp))))


def _relabel_small(inst: np.ndarray, min_px: int) -> np.ndarray:
    """Drop instances smaller than ``min_px`` pixels and renumber 1..n."""
    if inst.max() == 0:
        return inst.astype(np.int32)
    areas = np.bincount(inst.ravel())
    keep = areas >= min_px
    keep[0] = False
    lut = np.zeros(areas.size, dtype=np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return lut[inst]


def remove_small(mask: np.ndarray, min_px: int) -> np.ndarray:
    """Binary mask without its connected components smaller than ``min_px`` pixels."""
    return _relabel_small(label(mask), min_px) > 0


def instances_from_boundary(prob: np.ndarray, boundary: np.ndarray, mpp: float,
                            fg_threshold: float = 0.5, marker_threshold: float = 0.5,
                            min_marker_um2: float = 1.0, min_area_um2: float = 4.0,
                            boundary_weight: float = 1.0) -> np.ndarray:
    """Instance map (H, W) int32 from a nuclei probability and a boundary probability.

    The energy is ``prob - boundary_weight * boundary``; markers are where it exceeds
    ``marker_threshold``.
    """
    fg = prob > fg_threshold
    energy = prob - boundary_weight * boundary
    markers = _relabel_small(label(energy > marker_threshold), px_area(min_marker_um2, mpp))
    inst = watershed(-energy, markers, mask=fg)
    orphan = fg & (inst == 0)  # foreground without a marker: split by its distance transform
    if orphan.any():
        extra = instances_from_mask(orphan, mpp, min_area_um2=0.0)
        inst = np.where(extra > 0, extra + inst.max(), inst)
    return _relabel_small(inst.astype(np.int64), px_area(min_area_um2, mpp))


def instances_from_mask(mask: np.ndarray, mpp: float, min_distance_um: float = 2.5,
                        smooth_um: float = 0.5, min_area_um2: float = 4.0) -> np.ndarray:
    """Instance map (H, W) int32 from a binary nuclei mask by distance-transform watershed."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return np.zeros(mask.shape, dtype=np.int32)
    dist = ndi.gaussian_filter(ndi.distance_transform_edt(mask), smooth_um / mpp)
    comps = label(mask)
    peaks = peak_local_max(dist, min_distance=max(1, int(round(min_distance_um / mpp))),
                           labels=comps, exclude_border=False)
    markers = np.zeros(mask.shape, dtype=np.int64)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    inst = watershed(-dist, markers, mask=mask)
    orphans = label(mask & (inst == 0))
    if orphans.max():
        inst = np.where(orphans > 0, orphans + inst.max(), inst)
    return _relabel_small(inst.astype(np.int64), px_area(min_area_um2, mpp))
