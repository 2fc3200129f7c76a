import numpy as np
import pytest

from rckd.data.datasets import get_dataset
from rckd.data.datasets.base import DatasetError
from rckd.data.datasets.glas import GlaS, read_grades

HEADER = "name,patient ID, grade (GlaS), grade (Sirinukunwattana et al. 2015)"


def _tree(root, write_image, suffix=".bmp", n=(10, 4, 2)):
    rows = [HEADER]
    for split, count in zip(("train", "testA", "testB"), n):
        for i in range(1, count + 1):
            anno = np.zeros((6, 8), np.uint8)
            anno[1:3, 1:4] = 1
            anno[4:6, 5:8] = 2  # two gland instances
            write_image(root / f"{split}_{i}{suffix}", (8, 6), value=i)
            write_image(root / f"{split}_{i}_anno{suffix}", array=anno)
            grade = "malignant" if i % 2 else "benign"
            rows.append(f"{split}_{i},{i},  {grade}, whatever")
    (root / "Grade.csv").write_bytes("\r".join(rows).encode())  # old-Mac line endings, as released
    return root


def test_read_grades_cr_and_padded_header(tmp_path, write_image):
    _tree(tmp_path, write_image)
    g = read_grades(tmp_path / "Grade.csv")
    assert len(g) == 16 and g["train_1"] == ("1", 1) and g["testA_2"] == ("2", 0)


@pytest.mark.parametrize("suffix", [".bmp", ".png"])
def test_glas_official_splits_masks_grades(tmp_path, write_image, suffix):
    root = _tree(tmp_path, write_image, suffix)
    sizes = {s: len(GlaS(root, s)) for s in ("train", "val", "train_full", "test", "testA", "testB")}
    assert sizes == {"train": 8, "val": 2, "train_full": 10, "test": 6, "testA": 4, "testB": 2}
    seg = GlaS(root, "testA")
    s = seg[0]
    assert s["mask"].dtype.is_floating_point is False and set(s["mask"].unique().tolist()) == {0, 1}
    assert int(s["mask"].sum()) == 6 + 6 and "label" not in s
    grade = get_dataset("glas_grade", root, "test")
    assert grade.classes == ("benign", "malignant") and grade.task == "classification"
    assert grade.class_counts() == {"benign": 3, "malignant": 3}
    assert GlaS(root, "val").classes == ("background", "gland")


def test_glas_missing_annotation_and_row(tmp_path, write_image):
    root = _tree(tmp_path, write_image)
    (root / "train_3_anno.bmp").unlink()
    with pytest.raises(DatasetError, match="train_3_anno"):
        GlaS(root, "train")
    root2 = _tree(tmp_path / "b", write_image)
    write_image(root2 / "train_99.bmp", (8, 6))
    write_image(root2 / "train_99_anno.bmp", (8, 6), mode="L")
    with pytest.raises(DatasetError, match="no row for image 'train_99'"):
        GlaS(root2, "train")
    (root2 / "Grade.csv").unlink()
    with pytest.raises(DatasetError, match="Grade.csv not found"):
        GlaS(root2, "train")


def test_glas_real(shared_data):
    root = shared_data / "glas"
    counts = {s: len(GlaS(root, s)) for s in ("train_full", "testA", "testB")}
    assert counts == {"train_full": 32, "testA": 11, "testB": 5}
    train, val = GlaS(root, "train"), GlaS(root, "val")
    assert len(train) + len(val) == 32 and not {it.group for it in train.items} & {it.group for it in val.items}
    s = train[0]
    assert s["image"].shape[1:] == s["mask"].shape and s["mask"].max() == 1
    assert get_dataset("glas_grade", root, "all").class_counts() == {"benign": 22, "malignant": 26}
