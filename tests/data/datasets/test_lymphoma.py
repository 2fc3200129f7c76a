import pytest

from rckd.data.datasets import get_dataset
from rckd.data.datasets.base import DatasetError
from rckd.data.datasets.lymphoma import Lymphoma
from tests.conftest import shared_path


def test_lymphoma_layout_and_class_balance(class_tree):
    root = class_tree(("CLL", "FL", "MCL"), [10, 15, 5], ".tif", sub="lymphoma")
    parts = {s: get_dataset("lymphoma", root, s) for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [18, 6, 6]
    assert parts["train"].class_counts() == {"CLL": 6, "FL": 9, "MCL": 3}
    assert parts["test"].class_counts() == {"CLL": 2, "FL": 3, "MCL": 1}
    # same seed, same split; another seed, another split
    again = Lymphoma(root, "train")
    assert [it.path for it in again.items] == [it.path for it in parts["train"].items]
    other = Lymphoma(root, "train", seed=1)
    assert [it.path for it in other.items] != [it.path for it in parts["train"].items]


def test_lymphoma_wrong_suffix_is_reported(class_tree):
    root = class_tree(("CLL", "FL", "MCL"), 2, ".jpg")
    with pytest.raises(DatasetError, match="no images"):
        Lymphoma(root, "train")


def test_unknown_split_and_option(class_tree):
    root = class_tree(("CLL", "FL", "MCL"), 2, ".tif")
    with pytest.raises(ValueError, match="unknown split"):
        Lymphoma(root, "dev")
    with pytest.raises(ValueError, match="does not take option"):
        get_dataset("lymphoma", root, "train", magnification=40)
    with pytest.raises(ValueError, match="unknown dataset"):
        get_dataset("lymph", root, "train")


def test_mpp_scales_with_the_copy_width(class_tree):
    small = class_tree(("CLL", "FL", "MCL"), 2, ".tif")  # the fixture writes 12 px wide images
    assert Lymphoma(small, "all").mpp == pytest.approx(0.5 * 1388 / 12)


def test_real_downscaled_copy_is_about_1_66_um_per_px():
    ds = Lymphoma(shared_path("lymphoma"), "all")
    assert len(ds) == 374 and ds.class_counts() == Lymphoma.OFFICIAL_CLASS_COUNTS
    assert ds.mpp == pytest.approx(0.5 * 1388 / 417)
