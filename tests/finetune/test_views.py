import pytest
import torch

from rckd.finetune.views import IGNORE, EvalView, TrainView, rescale, tile_origins


class _DS(torch.utils.data.Dataset):
    mpp = 0.25

    def __init__(self, h, w, mask=True):
        self.h, self.w, self.mask = h, w, mask

    def __len__(self):
        return 2

    def __getitem__(self, i):
        s = {"image": torch.full((3, self.h, self.w), 100, dtype=torch.uint8), "label": i}
        if self.mask:
            s["mask"] = torch.ones(self.h, self.w, dtype=torch.long)
        return s


def test_tile_origins_cover_without_leaving():
    assert tile_origins(100, 32) == [0, 32, 64, 68]
    assert tile_origins(64, 32) == [0, 32]
    assert tile_origins(20, 32) == [0]


def test_train_view_crops_and_pads():
    big = TrainView(_DS(80, 50), 32)[0]
    assert big["image"].shape == (3, 32, 32) and big["mask"].shape == (32, 32) and int(big["label"]) == 0
    small = TrainView(_DS(20, 40), 32)[1]
    assert small["image"].shape == (3, 32, 32)
    assert int(small["mask"][25, 5]) == IGNORE and int(small["mask"][5, 5]) == 1  # padded rows ignored
    assert int(small["image"][0, 25, 5]) == 0
    resized = TrainView(_DS(80, 50), 32, rule="resize")[0]
    assert resized["image"].shape == (3, 32, 32)


def test_rescale_by_mpp_keeps_native_mask_for_eval():
    s = rescale(_DS(40, 60)[0], 0.5)
    assert s["image"].shape == (3, 20, 30) and s["mask"].shape == (20, 30)
    ev = EvalView(_DS(40, 60), 32, scale=0.5)[0]
    assert ev["image"].shape == (3, 20, 30) and ev["mask"].shape == (40, 60)


class _Crops(torch.utils.data.Dataset):
    """Distinct 24x24 images with labels (cropped to 16 by TrainView)."""

    def __init__(self, n: int = 16) -> None:
        g = torch.Generator().manual_seed(3)
        self.images = torch.randint(0, 256, (n, 3, 24, 24), dtype=torch.uint8, generator=g)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "label": i % 2}


def test_keyed_crops_make_resume_with_workers_exact(tmp_path):
    """An interrupted fine-tuning resumed with DataLoader workers equals an uninterrupted one."""
    import dataclasses

    from rckd.engine import TrainConfig, fit
    from rckd.runtime import seed_everything
    from tests.engine.toy import ToyTask

    view = TrainView(_Crops(), 16)
    assert torch.equal(view[(3, 99)]["image"], view[(3, 99)]["image"])  # the key fixes the crop
    assert any(not torch.equal(view[(3, 99)]["image"], view[(3, k)]["image"]) for k in range(5))
    cfg = dataclasses.replace(TrainConfig(), device="cpu", steps=6, batch_size=4, lr=3e-2, workers=2,
                              log_every=1, ckpt_every=2, channels_last=False, tensorboard=False)

    def run(out, **kw):
        seed_everything(0)
        task = ToyTask(**kw)
        fit(task, view, dataclasses.replace(cfg, out=str(out)))
        return task

    whole = run(tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut", crash_at=5)  # dies in step 5, after the step-4 checkpoint
    resumed = run(tmp_path / "cut")
    for (k, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_cached_view_reads_each_image_once_and_crops_alike():
    reads = []

    class Counting(_Crops):
        def __getitem__(self, i):
            reads.append(i)
            return super().__getitem__(i)

    plain, cached = TrainView(_Crops(), 16), TrainView(Counting(), 16, cache=True)
    for _ in range(3):
        for key in range(4):
            assert torch.equal(plain[(key, 7 + key)]["image"], cached[(key, 7 + key)]["image"])
    assert sorted(reads) == [0, 1, 2, 3]
