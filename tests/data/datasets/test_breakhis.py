import pytest

from rckd.data.datasets import get_dataset
from rckd.data.datasets.base import DatasetError
from rckd.data.datasets.breakhis import SUBTYPES, BreakHis, parse_name

# (code, patient, n images per magnification)
PATIENTS = [(c, f"{1000 + 10 * i + j}AB", 2) for i, c in enumerate(SUBTYPES) for j in range(5)]


def _tree(tmp_path, write_image, mags=(40, 400)):
    base = tmp_path / "BreaKHis_v1" / "histology_slides" / "breast"
    for code, patient, n in PATIENTS:
        folder, malignant = SUBTYPES[code]
        bm = "M" if malignant else "B"
        for mag in mags:
            for k in range(n):
                d = base / ("malignant" if malignant else "benign") / "SOB" / folder / f"SOB_{bm}_{code}_14-{patient}" / f"{mag}X"
                write_image(d / f"SOB_{bm}_{code}-14-{patient}-{mag}-{k + 1:03d}.png", (8, 6))
    return tmp_path


def test_parse_name():
    info = parse_name("SOB_M_DC-14-17614-400-014.png")
    assert info == {"malignant": 1, "subtype": 4, "code": "DC", "patient": "14-17614", "mag": 400}
    with pytest.raises(DatasetError, match="contradicts"):
        parse_name("SOB_B_DC-14-17614-400-014.png")
    with pytest.raises(DatasetError, match="not a BreakHis file name"):
        parse_name("foo.png")


def test_breakhis_patient_splits_labels_magnification(tmp_path, write_image):
    root = _tree(tmp_path, write_image)
    parts = {s: BreakHis(root, s) for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [96, 32, 32]  # 3/1/1 patients x 8 types x 4
    pats = [parts[s].patients for s in ("train", "val", "test")]
    assert not (pats[0] & pats[1] or pats[0] & pats[2] or pats[1] & pats[2])
    assert parts["train"].class_counts() == {"benign": 48, "malignant": 48}
    sub = BreakHis(root, "train", labels="subtype", magnification=400)
    assert len(sub) == 48 and set(sub.class_counts().values()) == {6} and len(sub.classes) == 8
    assert sub.mpp == BreakHis.MPP[400]
    assert all(it.path.parent.name == "400X" for it in sub.items)
    with pytest.raises(ValueError, match="magnification"):
        BreakHis(root, "train", magnification=50)
    assert get_dataset("breakhis", root, "all", labels="subtype").validate(expected=160)


def test_breakhis_folder_contradicting_name(tmp_path, write_image):
    root = _tree(tmp_path, write_image, mags=(40,))
    bad = next(root.rglob("40X"))
    write_image(bad / "SOB_B_A-14-9999-100-001.png", (8, 6))
    with pytest.raises(DatasetError, match="magnification folder"):
        BreakHis(root, "all")


def test_breakhis_empty(tmp_path):
    with pytest.raises(DatasetError, match="no BreakHis images"):
        BreakHis(tmp_path, "all")


def test_breakhis_real_sample(shared_data):
    ds = BreakHis(shared_data / "samples" / "breakhis", "all", magnification=400)
    assert len(ds) == 4 and ds.class_counts() == {"benign": 2, "malignant": 2}
    assert ds[0]["image"].shape == (3, 460, 700)
