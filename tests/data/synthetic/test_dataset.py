"""SyntheticDataset: sample dicts per task, as the package conventions define them."""

import pytest
import torch

from rckd.data.synthetic import SyntheticDataset, SyntheticWorld


def test_classification_samples():
    ds = SyntheticDataset(6, seed=1, size=64, mpp=0.5)
    assert len(ds) == 6 and ds.mpp == 0.5 and len(ds.classes) >= 4
    s = ds[2]
    assert set(s) == {"image", "label"}
    assert s["image"].dtype == torch.uint8 and s["image"].shape == (3, 64, 64)
    assert s["label"] == 2 and ds.labels == [0, 1, 2, 3, 0, 1]
    tile = SyntheticWorld(seed=1, size=64, mpp=0.5).tile(2)
    assert torch.equal(s["image"], torch.from_numpy(tile.image).permute(2, 0, 1))


def test_segmentation_and_nuclei_samples():
    seg = SyntheticDataset(2, seed=0, size=64, task="segmentation")[0]
    assert seg["mask"].dtype == torch.int64 and seg["mask"].shape == (64, 64)
    assert set(seg["mask"].unique().tolist()) <= {0, 1}
    nuc = SyntheticDataset(2, seed=0, size=64, task="nuclei")[1]
    assert nuc["nuclei"].dtype == torch.int32 and nuc["mask"].dtype == torch.int64
    assert torch.equal(nuc["mask"], (nuc["nuclei"] > 0).long())
    assert nuc["nuclei"].max() > 0
    assert set(SyntheticDataset(1, size=32, task="unlabeled")[0]) == {"image"}


def test_offset_and_errors():
    a = SyntheticDataset(4, seed=0, size=32)
    b = SyntheticDataset(2, seed=0, size=32, offset=2)
    assert torch.equal(a[2]["image"], b[0]["image"])
    with pytest.raises(IndexError):
        a[4]
    with pytest.raises(ValueError):
        SyntheticDataset(2, task="detection")


def test_dataloader_workers_pickle():
    ds = SyntheticDataset(4, seed=0, size=32)
    ds[0]                                            # populated noise bank travels too
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4, num_workers=1)))
    assert batch["image"].shape == (4, 3, 32, 32)
    assert torch.equal(batch["image"][1], ds[1]["image"])
