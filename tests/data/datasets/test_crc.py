
import pytest

from rckd.data.datasets import get_dataset
from rckd.data.datasets.base import DatasetError
from rckd.data.datasets.crc import Kather2016, NCTCRC


def test_kather2016_official_layout_counts_and_labels(class_tree):
    root = class_tree(Kather2016.FOLDERS, 10, ".tif", sub="Kather_texture_2016_image_tiles_5000")
    parts = {s: Kather2016(root, s) for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [48, 16, 16]
    assert all(n == 6 for n in parts["train"].class_counts().values())
    paths = [set(it.path for it in d.items) for d in parts.values()]
    assert not (paths[0] & paths[1]) and not (paths[0] & paths[2]) and not (paths[1] & paths[2])
    sample = parts["test"][0]
    assert sample["image"].dtype.is_floating_point is False and sample["image"].shape == (3, 10, 12)
    # label follows the folder: value 10*c+5 was written into class c
    for i in range(len(parts["test"])):
        s = parts["test"][i]
        assert int(s["image"][0, 0, 0]) == 10 * s["label"] + 5
    assert Kather2016(root, "all").validate(expected=80)["tumor"] == 10
    with pytest.raises(DatasetError, match="expected 5000 \\(the official release\\)"):
        Kather2016(root, "all").validate(expected="official")


def test_kather2016_missing_class_folder_is_named(class_tree):
    root = class_tree(Kather2016.FOLDERS[:-1], 3, ".tif")
    with pytest.raises(DatasetError, match="08_EMPTY"):
        Kather2016(root, "train")


def test_kather2016_empty_class_folder(class_tree):
    root = class_tree(Kather2016.FOLDERS, [3] * 7 + [0], ".tif")
    (root / "08_EMPTY").mkdir(exist_ok=True)
    with pytest.raises(DatasetError, match="08_EMPTY: no images"):
        Kather2016(root, "train")


def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError):
        Kather2016(tmp_path / "nope", "train")


def test_nct_crc_official_train_and_test(class_tree, tmp_path):
    class_tree(NCTCRC.FOLDERS, 10, ".tif", sub="NCT-CRC-HE-100K")
    root = class_tree(NCTCRC.FOLDERS, 2, ".tif", sub="CRC-VAL-HE-7K")
    train, val, test = (NCTCRC(root, s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (81, 9, 18)
    assert all("CRC-VAL-HE-7K" in str(it.path) for it in test.items)
    assert not {it.path for it in train.items} & {it.path for it in val.items}
    assert len(train.classes) == 9 and train.mpp == 0.5


def test_nct_crc_missing_test_folder(class_tree):
    root = class_tree(NCTCRC.FOLDERS, 2, ".tif", sub="NCT-CRC-HE-100K")
    with pytest.raises(DatasetError, match="CRC-VAL-HE-7K"):
        NCTCRC(root, "test")


def test_real_samples(shared_data):
    kather = get_dataset("kather2016", shared_data / "samples" / "kather2016", "all")
    assert len(kather) == 24 and set(kather.class_counts().values()) == {3}
    assert kather[0]["image"].shape == (3, 150, 150)
    nct = get_dataset("nct_crc", shared_data / "samples" / "nct_crc_he", "all")
    assert len(nct) == 9 and nct[0]["image"].shape == (3, 224, 224)
    assert nct.classes[nct.items[1].label] == "background"  # BACK folder
