import numpy as np
import pytest
import scipy.io

from rckd.data.datasets import get_dataset
from rckd.data.datasets.base import DatasetError
from rckd.data.datasets.crchisto import CLASSES, CRCHisto


def _tree(root, write_image, n_images=10):
    for i in range(1, n_images + 1):
        img = np.zeros((40, 40, 3), np.uint8)
        img[..., 0] = np.arange(40)[None, :]  # red = x
        img[..., 1] = np.arange(40)[:, None]  # green = y
        write_image(root / "Detection" / f"img{i}" / f"img{i}.bmp", array=img)
        for c, name in enumerate(CLASSES):
            pts = np.array([[10.4 + c, 20.7], [30.0, 5.2]][: c % 2 + 1], float) if c < 3 else np.zeros((0, 2))
            (root / "Classification" / f"img{i}").mkdir(parents=True, exist_ok=True)
            scipy.io.savemat(root / "Classification" / f"img{i}" / f"img{i}_{name}.mat", {"detection": pts})
    return root


def test_crchisto_crops_labels_and_image_splits(tmp_path, write_image):
    root = _tree(tmp_path / "CRCHistoPhenotypes_2016_04_28" / "cls_and_det", write_image)
    ds = get_dataset("crchisto", tmp_path, "all", crop_size=8)
    assert len(ds) == 10 * 4 and ds.class_counts() == {"epithelial": 10, "fibroblast": 20,
                                                       "inflammatory": 10, "others": 0}
    s = ds[0]  # epithelial at (10.4, 20.7) -> pixel (10, 20) at the crop centre (4, 4)
    assert s["label"] == 0 and s["image"].shape == (3, 8, 8)
    assert int(s["image"][0, 4, 4]) == 10 and int(s["image"][1, 4, 4]) == 20
    border = CRCHisto(root, "all", crop_size=16)[2]  # (30, 5.2): reflect-padded at the top
    assert border["image"].shape == (3, 16, 16)
    parts = [CRCHisto(root, s) for s in ("train", "val", "test")]
    assert [len(p.images) for p in parts] == [6, 2, 2]
    assert sum(len(p) for p in parts) == 40
    assert not set(parts[0].images) & set(parts[2].images)


def test_crchisto_missing_image_and_class_file(tmp_path, write_image):
    root = _tree(tmp_path, write_image, 3)
    (root / "Classification" / "img2" / "img2_others.mat").unlink()
    with pytest.raises(DatasetError, match="img2_others.mat"):
        CRCHisto(root, "all")
    (root / "Detection" / "img3" / "img3.bmp").unlink()
    with pytest.raises(DatasetError, match="img3"):
        CRCHisto(root, "all")
    with pytest.raises(DatasetError, match="Classification"):
        CRCHisto(root / "Detection", "all")


def test_crchisto_real(shared_data):
    ds = CRCHisto(shared_data / "crchistophenotypes", "all")
    assert len(ds) == 8683
    assert ds.class_counts() == {"epithelial": 3533, "fibroblast": 1691, "inflammatory": 2400, "others": 1059}
    assert ds[0]["image"].shape == (3, 32, 32)
    parts = [CRCHisto(shared_data / "crchistophenotypes", s) for s in ("train", "val", "test")]
    assert [len(p.images) for p in parts] == [30, 10, 10]
