"""The synthetic H&E world: determinism, masks that agree with the pixels, class statistics."""

import numpy as np
import pytest
from scipy import ndimage
from skimage.color import rgb2hed
from skimage.filters import threshold_otsu

from rckd.data.synthetic import CLASSES, SyntheticWorld

PER_CLASS = 20


@pytest.fixture(scope="module")
def tiles():
    world = SyntheticWorld(seed=11, size=256, mpp=0.5)
    return [world.tile(i) for i in range(PER_CLASS * len(CLASSES))]


def _by_class(tiles, label):
    return [t for t in tiles if t.label == label]


def _mean_area_um2(tile, mpp):
    counts = np.bincount(tile.nuclei.ravel())[1:]
    return counts.mean() * mpp * mpp


def test_types_and_shapes():
    tile = SyntheticWorld(seed=0, size=(96, 128), mpp=0.5).tile(0)
    assert tile.image.shape == (96, 128, 3) and tile.image.dtype == np.uint8
    assert tile.nuclei.shape == (96, 128) and tile.nuclei.dtype == np.int32
    assert tile.glands.shape == (96, 128) and tile.glands.dtype == np.uint8
    assert set(np.unique(tile.glands)) <= {0, 1}
    assert isinstance(tile.label, int)
    assert tile.tissue.shape == (96, 128) and tile.tissue.dtype == np.uint8
    assert len(SyntheticWorld.classes) >= 4
    assert SyntheticWorld.classes == ("normal", "benign", "in_situ", "invasive")


def test_deterministic_per_seed_and_index():
    a, b = SyntheticWorld(seed=5, size=96), SyntheticWorld(seed=5, size=96)
    b.tile(99)                                       # other draws do not disturb tile(3)
    t1, t2 = a.tile(3), b.tile(3)
    for name in ("image", "nuclei", "glands"):
        assert np.array_equal(getattr(t1, name), getattr(t2, name)), name
    assert t1.label == t2.label
    assert not np.array_equal(t1.image, SyntheticWorld(seed=6, size=96).tile(3).image)
    assert not np.array_equal(t1.image, a.tile(7).image)          # same class, other index


def test_labels_balanced_and_selectable():
    world = SyntheticWorld(seed=0, size=64)
    assert [world.tile(i).label for i in range(8)] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert world.tile(0, label=3).label == 3
    with pytest.raises(ValueError):
        world.tile(0, label=len(CLASSES))
    with pytest.raises(ValueError):
        SyntheticWorld(mpp=0)


def test_instance_ids_contiguous_and_connected(tiles):
    pieces = []
    for t in tiles:
        ids = np.unique(t.nuclei)
        assert np.array_equal(ids, np.arange(ids.max() + 1)), "ids must be 0..N without gaps"
        for k, sl in enumerate(ndimage.find_objects(t.nuclei), start=1):
            pieces.append(ndimage.label(t.nuclei[sl] == k)[1])
    pieces = np.array(pieces)
    assert len(pieces) > 1000
    assert (pieces == 1).mean() > 0.98


def test_hematoxylin_marks_the_nuclei(tiles):
    """Colour deconvolution recovers hematoxylin on the nuclei: Otsu on the H channel
    reproduces the nuclei mask, and nuclei carry far more H than the rest."""
    for t in tiles[::4]:
        h = rgb2hed(t.image)[..., 0]
        nuc = t.nuclei > 0
        stroma = ~nuc & (t.glands == 0)
        assert np.median(h[nuc]) > 4 * max(np.median(h[stroma]), 1e-3)
        seg = h > threshold_otsu(h)
        dice = 2 * (seg & nuc).sum() / (seg.sum() + nuc.sum())
        assert dice > 0.85, (t.label, dice)


def test_gland_lumens_are_white(tiles):
    inside = total = 0
    for label in (0, 1):                                   # open lumens: normal, benign
        for t in _by_class(tiles, label):
            white = (t.image.min(-1) > 228) & (t.tissue > 0)      # glass edges excluded
            assert t.glands.any()
            if t.glands.mean() > 0.05:
                assert white[t.glands > 0].mean() > 0.05
            inside += (white & (t.glands > 0)).sum()
            total += white.sum()
    assert inside > 0.85 * total, (inside, total)


def test_glass_edges_are_empty(tiles):
    """Some tiles end at a tissue edge: bright glass without nuclei or glands, in every class."""
    edged = [t for t in tiles if not t.tissue.all()]
    assert 3 <= len(edged) <= len(tiles) // 2
    for t in edged:
        glass = t.tissue == 0
        assert not (t.nuclei[glass].any() or t.glands[glass].any())
        assert np.median(t.image[glass].min(-1)) > 215
        assert np.median(t.image[~glass].min(-1)) < np.median(t.image[glass].min(-1)) - 20


def test_class_morphology_differs(tiles):
    area = [np.mean([_mean_area_um2(t, 0.5) for t in _by_class(tiles, c)])
            for c in range(len(CLASSES))]
    # nuclei grow from normal to invasive, with a clear margin at each step
    assert all(b > 1.15 * a for a, b in zip(area, area[1:])), area
    assert 15 < area[0] < 40 and area[-1] > 60, area
    gland_frac = [np.mean([t.glands.mean() for t in _by_class(tiles, c)])
                  for c in range(len(CLASSES))]
    assert gland_frac[3] == 0 and min(gland_frac[:3]) > 0.05, gland_frac
    density = [np.mean([(t.nuclei > 0).mean() for t in _by_class(tiles, c)])
               for c in range(len(CLASSES))]
    assert density[2] > 1.3 * density[0] and density[3] > 1.3 * density[0], density


def _nearest_centroid_loo(feats: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out accuracy of a nearest-class-centroid classifier on standardised features."""
    feats = (feats - feats.mean(0)) / feats.std(0)
    correct = 0
    for i in range(len(feats)):
        keep = np.arange(len(feats)) != i
        cents = np.array([feats[keep & (labels == c)].mean(0) for c in range(len(CLASSES))])
        correct += int(np.argmin(((cents - feats[i]) ** 2).sum(1)) == labels[i])
    return correct / len(feats)


def test_nuclei_tell_the_class_global_colour_does_not(tiles):
    """The class lies in the nuclei: their mean size alone classifies most tiles, while a
    tile's mean colour stays a weak cue (staining is drawn independently of the class)."""
    labels = np.array([t.label for t in tiles])
    colour = np.array([t.image.reshape(-1, 3).mean(0) for t in tiles])
    size = np.array([[np.log(_mean_area_um2(t, 0.5))] for t in tiles])
    acc_colour = _nearest_centroid_loo(colour, labels)
    acc_size = _nearest_centroid_loo(size, labels)
    assert acc_colour < 0.6, acc_colour
    assert acc_size > 0.7 and acc_size > acc_colour + 0.2, (acc_size, acc_colour)


def test_sizes_are_in_microns():
    """The same tissue at 0.25 um/px has the same nuclear areas in um^2 as at 0.5 um/px."""
    lo = SyntheticWorld(seed=2, size=128, mpp=0.5)
    hi = SyntheticWorld(seed=2, size=256, mpp=0.25)
    for label in (0, 3):
        a = np.mean([_mean_area_um2(lo.tile(i, label), 0.5) for i in range(6)])
        b = np.mean([_mean_area_um2(hi.tile(i, label), 0.25) for i in range(6)])
        assert b == pytest.approx(a, rel=0.2), (label, a, b)


def test_fixed_stain_shares_colour_across_tiles():
    """``tile(stain=...)`` (one staining per slide) keeps the morphology, fixes the colours."""
    from rckd.data.synthetic.stain import sample_stain

    world = SyntheticWorld(seed=4, size=128)
    stain = sample_stain(np.random.default_rng(0))
    a, b = world.tile(1, stain=stain), world.tile(5, stain=stain)
    assert np.array_equal(a.nuclei, world.tile(1).nuclei)          # same tissue as unstained call
    assert not np.array_equal(a.image, world.tile(1).image)
    nuc_a = a.image[a.nuclei > 0].mean(0)
    nuc_b = b.image[b.nuclei > 0].mean(0)
    free = [world.tile(i).image[world.tile(i).nuclei > 0].mean(0) for i in (1, 5, 9, 13)]
    assert np.abs(nuc_a - nuc_b).max() < np.ptp(np.array(free), axis=0).max()
