"""The classical teacher finds nuclei on synthetic tiles (exact masks) and on real MoNuSeg."""

import numpy as np
import pytest
import torch

from rckd.metrics.instance import dice
from rckd.models.teachers.classical import ClassicalTeacher, hematoxylin


def test_hematoxylin_matches_skimage():
    from skimage.color import rgb2hed
    rgb = np.random.default_rng(0).random((16, 16, 3))
    assert np.allclose(hematoxylin(rgb), np.maximum(rgb2hed(rgb)[..., 0], 0), atol=1e-9)


def test_synthetic_tiles():
    """Measured Dice vs the exact masks: 0.982-0.992 on 8 tiles (128 px, seed 0); threshold 0.9."""
    from rckd.data.synthetic import SyntheticDataset
    ds = SyntheticDataset(3, seed=0, size=128, mpp=0.5, task="nuclei")
    t = ClassicalTeacher()
    for i in range(len(ds)):
        s = ds[i]
        r = t.response(s["image"][None], ds.mpp)
        assert r.shape == (1, 1, 128, 128)
        assert dice(s["mask"].numpy(), r[0, 0].numpy() > 0.5) > 0.9
    again = t.response(ds[0]["image"][None], ds.mpp)
    assert torch.equal(again, t.response(ds[0]["image"][None], ds.mpp))  # deterministic


def test_real_monuseg(shared_data):
    """Measured on the top-left 500 px of each of the 30 images: mean Dice 0.67 (0.31-0.88), as the
    data README's 0.68 on whole images; on the three below 0.740, 0.681, 0.589. An all-nuclei
    guess scores 2f / (1 + f) (f = nuclear fraction): checked to be clearly lower."""
    from rckd.data.datasets.monuseg import MoNuSeg
    root = shared_data / "monuseg" / "train"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    ds = MoNuSeg(root, names=["TCGA-18-5592-01Z-00-DX1", "TCGA-21-5784-01Z-00-DX1", "TCGA-21-5786-01Z-00-DX1"])
    t = ClassicalTeacher()
    scores = []
    for i in range(len(ds)):
        s = ds[i]
        gt = s["nuclei"][:500, :500].numpy()
        pred = t.instances(s["image"][None, :, :500, :500], ds.mpp)[0]
        scores.append(dice(gt, pred))
        assert scores[-1] > 0.5
        assert scores[-1] > dice(gt, np.ones_like(gt)) + 0.05  # measured margins >= 0.12
        assert 0.5 < len(np.unique(pred)) / len(np.unique(gt)) < 2.0  # nuclei counted, not blobs
    assert np.mean(scores) > 0.6
