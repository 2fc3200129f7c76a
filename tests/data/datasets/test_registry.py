import pytest

from rckd.data.datasets import DATASETS, dataset_task, get_dataset


def test_every_name_has_a_task():
    assert {dataset_task(n) for n in DATASETS} == {"classification", "segmentation"}
    with pytest.raises(ValueError, match="unknown dataset"):
        dataset_task("imagenet")


def test_synthetic_splits_are_disjoint():
    train = get_dataset("synthetic", None, "train", size=32, sizes={"train": 4})
    test = get_dataset("synthetic", None, "test", size=32, n=3)
    assert len(train) == 4 and len(test) == 3 and train.offset != test.offset
    seg = get_dataset("synthetic_seg", None, "val", size=32, n=2)
    assert seg[0]["mask"].shape == (32, 32) and seg.classes == ("background", "gland")


def test_monuseg_through_registry(shared_data):
    pytest.importorskip("rckd.data.datasets.monuseg")
    root = shared_data / "monuseg" / "train"
    parts = {s: get_dataset("monuseg", root, s) for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [18, 6, 6]
    assert not set(parts["train"].names) & set(parts["test"].names)
    assert parts["test"].mpp == pytest.approx(0.2527)


def test_root_required():
    with pytest.raises(ValueError, match="needs a root"):
        get_dataset("glas", None, "train")
