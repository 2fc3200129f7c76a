"""Pretraining methods on the synthetic world: losses fall, RCKD learns the teacher, exports load."""

from __future__ import annotations

import copy

import pytest
import torch

from rckd.config import from_dict, update
from rckd.data.augment import to_float
from rckd.data.synthetic import SyntheticDataset
from rckd.engine import latest_checkpoint, load_checkpoint, read_metrics
from rckd.pretrain import METHODS
from rckd.pretrain.run import PretrainConfig, build_task, pretrain
from rckd.runtime import seed_everything

@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on a shared 2-core machine two threads run several times slower."""
    torch.set_num_threads(1)


TINY = dict(backbone="test_resnet", image_size=32, pool_size=64, batch_size=16, steps=10, lr=3e-3,
            warmup_steps=2, workers=0, log_every=1, probe_size=None,
            rckd={"teacher": "classical", "decoder_width": 16}, moco={"queue": 16}, barlow={"proj_dim": 64})


def _cfg(tmp_path, **kw) -> PretrainConfig:
    """TINY, then ``kw`` (sections merge key by key: ``rckd={"loss": "kl"}`` keeps the rest)."""
    return update(from_dict(PretrainConfig, {"out": str(tmp_path / "run"), "device": "cpu", **TINY}), kw)


def _fixed_loss(task, batch, queue=None) -> float:
    """The task's loss on a fixed batch with fixed augmentation draws (and a fixed MoCo queue)."""
    task = copy.deepcopy(task)
    if queue is not None:
        task.queue.copy_(queue)
    losses = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        with torch.no_grad():
            losses.append(task(batch)[0].item())
    return sum(losses) / len(losses)


RCKD = dict(method="rckd", image_size=64, pool_size=96, steps=40, batch_size=8, lr=5e-3)


@pytest.fixture(scope="module")
def rckd_run(tmp_path_factory):
    """One short RCKD run with the classical teacher, shared by the RCKD tests."""
    torch.set_num_threads(1)
    cfg = _cfg(tmp_path_factory.mktemp("rckd"), **RCKD)
    return cfg, pretrain(cfg)


@pytest.mark.parametrize("method", ["rckd", "barlow", "moco"])
def test_method_loss_falls_on_synthetic_world(tmp_path, method, request):
    if method == "rckd":
        cfg, path = request.getfixturevalue("rckd_run")
    else:
        cfg = _cfg(tmp_path, method=method)
        path = pretrain(cfg)
    size = cfg.image_size
    rows = read_metrics(cfg.out)
    assert len(rows) == cfg.steps and all(r["train/loss"] == r["train/loss"] for r in rows)
    # the same task before and after training, on held-out tiles with the same augmentation draws
    batch = {"image": torch.stack([SyntheticDataset(16, seed=123, size=size, task="unlabeled")[i]["image"]
                                   for i in range(16)])}
    seed_everything(5)
    task = build_task(cfg, 0.5)
    queue = task.queue.clone() if method == "moco" else None
    before = _fixed_loss(task, batch, queue)
    state, meta, _ = load_checkpoint(latest_checkpoint(cfg.out))
    task.load_state_dict(state)
    after = _fixed_loss(task, batch, queue)
    assert after < 0.9 * before, (before, after)
    assert meta["step"] == cfg.steps and meta["method"] == method
    assert path.name == "backbone.safetensors" and path.is_file()


def test_rckd_student_agrees_with_teacher(rckd_run):
    from rckd.models.teachers import get_teacher

    cfg, _ = rckd_run
    x = to_float(torch.stack([SyntheticDataset(8, seed=77, size=64, task="unlabeled")[i]["image"]
                              for i in range(8)]))
    teacher = get_teacher("classical").response(x, 0.5) > 0.5
    assert 0.05 < teacher.float().mean() < 0.6

    def dice(task) -> float:
        task.eval()
        with torch.no_grad():
            student = torch.sigmoid(task.predict(x)) > 0.5
        return (2 * (student & teacher).sum() / (student.sum() + teacher.sum())).item()

    seed_everything(0)
    task = build_task(cfg, 0.5)
    at_init = dice(task)
    task.load_state_dict(load_checkpoint(latest_checkpoint(cfg.out))[0])
    trained = dice(task)
    assert trained > 0.6 and trained > at_init + 0.2, (at_init, trained)
    assert task.teacher.tta == 1
    assert build_task(update(cfg, {"rckd": {"tta": 4}}), 0.5).teacher.tta == 4


def test_export_loads_in_create_backbone_and_timm(tmp_path):
    import timm

    from rckd.models.backbones import create_backbone

    cfg = _cfg(tmp_path, method="barlow", steps=2)
    path = pretrain(cfg)
    state = load_checkpoint(latest_checkpoint(cfg.out))[0]
    expected = {k[len("backbone.model."):]: v for k, v in state.items() if k.startswith("backbone.model.")}
    loaded = create_backbone("test_resnet", weights=path).export_state_dict()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)
    model = timm.create_model("test_resnet", pretrained=True, num_classes=3,
                              pretrained_cfg_overlay=dict(file=str(path)))
    timm_state = model.state_dict()
    shared = [k for k in expected if k in timm_state]
    assert len(shared) == len(expected)
    assert all(torch.equal(timm_state[k], expected[k]) for k in shared)


def test_imagenet_init_from_local_file(tmp_path):
    import timm

    from rckd.models.backbones import create_backbone

    ref = timm.create_model("test_resnet", num_classes=1000)
    src = tmp_path / "imagenet.pth"
    torch.save(ref.state_dict(), src)
    cfg = _cfg(tmp_path, method="imagenet", imagenet={"weights": str(src)})
    path = pretrain(cfg)
    loaded = create_backbone("test_resnet", weights=path).export_state_dict()
    ref_state = ref.state_dict()
    assert all(torch.equal(v, ref_state[k]) for k, v in loaded.items())
    assert not any(k.startswith("fc.") for k in loaded)
    with pytest.raises(FileNotFoundError, match="not found"):
        pretrain(_cfg(tmp_path / "x", method="imagenet", imagenet={"weights": str(tmp_path / "missing.pth")}))
    with pytest.raises(ValueError, match="imagenet.weights: method=imagenet needs"):
        _cfg(tmp_path / "x", method="imagenet")  # refused when the config is built


def test_methods_table():
    assert set(METHODS) == {"rckd", "barlow", "moco", "imagenet"}


def test_cached_responses_feed_rckd_without_teacher(tmp_path):
    import h5py

    from rckd.pretrain.cache import CachedResponses
    from rckd.pretrain.pools import build_pool

    pool = build_pool("synthetic", 32, 0.5, 16)
    responses = (torch.rand(16, 32, 32) * 255).to(torch.uint8).numpy()
    with h5py.File(tmp_path / "cache.h5", "w") as h:
        h["responses"] = responses
    cached = CachedResponses(pool, tmp_path / "cache.h5")
    assert torch.equal(cached[3]["target"], torch.from_numpy(responses[3]))
    assert torch.equal(cached[3]["image"], pool[3]["image"])
    cfg = _cfg(tmp_path, method="rckd", pool_size=16, batch_size=8, steps=2,
               rckd={"teacher": "no-such-teacher", "cache": str(tmp_path / "cache.h5"), "loss": "kl",
                     "temperature": 2.0})
    assert pretrain(cfg).is_file()  # the teacher is never looked up
    with pytest.raises(ValueError, match="16 cached responses for a pool of 8"):
        CachedResponses(build_pool("synthetic", 32, 0.5, 8), tmp_path / "cache.h5")


def test_interrupted_pretraining_resumes_like_uninterrupted(tmp_path, monkeypatch):
    from rckd.pretrain.barlow import BarlowTask

    kw = dict(method="barlow", steps=6, ckpt_every=3, batch_size=8, pool_size=32)
    ref = _cfg(tmp_path / "a", **kw)
    pretrain(ref)
    cfg = _cfg(tmp_path / "b", **kw)
    forward, calls = BarlowTask.forward, []

    def crashing(self, batch):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt("simulated interruption")
        return forward(self, batch)

    monkeypatch.setattr(BarlowTask, "forward", crashing)
    with pytest.raises(KeyboardInterrupt):
        pretrain(cfg)
    monkeypatch.setattr(BarlowTask, "forward", forward)
    assert latest_checkpoint(cfg.out).name == "step_00000003"
    pretrain(cfg)  # resumes at step 3: weights, optimizer, augmentation RNG restored
    a = [r["train/loss"] for r in read_metrics(ref.out)]
    b = [r["train/loss"] for r in read_metrics(cfg.out)]
    assert len(b) == 6 and b == pytest.approx(a, rel=1e-4)
    with pytest.raises(ValueError, match=r"refusing to resume.*barlow\.lambd"):
        pretrain(update(cfg, {"steps": 8, "barlow": {"lambd": 0.01}}))


def test_pretrain_from_tile_sets_and_teacher_cache(tmp_path):
    """The full data path: rckd tile -> rckd teacher predict -> rckd pretrain (cached targets)."""
    from rckd.data.synthetic import write_synthetic_slide
    from rckd.data.wsi.pipeline import TileConfig, run_tiling
    from rckd.teacher.predict import PredictConfig, predict_responses

    slide = write_synthetic_slide(tmp_path / "s.tif", 512, 384, mpp=0.5, seed=3)
    run_tiling(TileConfig(out=str(tmp_path / "tiles"), slides=[str(slide)], target_mpp=0.5, patch_size=64,
                          save_images=True, progress=False))
    tile_set = next((tmp_path / "tiles").glob("*mpp_*px_*px"))
    predict_responses(PredictConfig(inputs=[str(tile_set)], out=str(tmp_path / "resp"),
                                    teacher="classical", device="cpu", panel=0))
    cfg = _cfg(tmp_path, method="rckd", pool=str(tile_set), image_size=64, batch_size=8, steps=3,
               rckd={"cache": str(tmp_path / "resp"), "teacher": "no-such-teacher"})
    assert pretrain(cfg).is_file()
    assert len(read_metrics(cfg.out)) == 3


def test_moco_queue_and_momentum_update():
    from rckd.models.backbones import create_backbone
    from rckd.pretrain.moco import MoCoTask

    torch.manual_seed(0)
    task = MoCoTask(create_backbone("test_resnet"), size=32, dim=8, queue=10, momentum=0.5, augment=False)
    keys = [torch.nn.functional.normalize(torch.randn(8, 8), dim=1) for _ in range(2)]
    q0 = [p.detach().clone() for p in task.head.parameters()]
    k0 = [p.detach().clone() for p in task.key_head.parameters()]
    with torch.no_grad():
        for p in task.head.parameters():
            p.add_(1.0)
    for k in keys:
        task._pending = [k]
        task.after_step(1, 10)
    assert int(task.queue_ptr) == 6  # 16 keys through a queue of 10: wrapped once
    assert torch.allclose(task.queue[:6], keys[1][2:])   # second batch wrapped to the front
    assert torch.allclose(task.queue[6:8], keys[0][6:])  # the oldest keys left
    assert torch.allclose(task.queue[8:], keys[1][:2])
    # two momentum updates with m = 0.5 towards the (shifted) query head
    for pk, a, b in zip(task.key_head.parameters(), k0, q0):
        expected = 0.25 * a + 0.75 * (b + 1.0)
        assert torch.allclose(pk, expected, atol=1e-6)


def test_pretrain_on_an_image_folder(tmp_path):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    pool = SyntheticDataset(16, seed=4, size=48, task="unlabeled")
    for i in range(16):
        Image.fromarray(pool[i]["image"].permute(1, 2, 0).numpy()).save(folder / f"tile_{i:02d}.png")
    cfg = _cfg(tmp_path, method="barlow", pool=str(folder), image_size=32, batch_size=8, steps=2)
    assert pretrain(cfg).is_file()
    import json
    summary = json.loads((tmp_path / "run" / "pretrain.json").read_text())
    assert summary["steps"] == 2 and summary["method"] == "barlow"
    with pytest.raises(FileNotFoundError, match="pool not found"):
        pretrain(_cfg(tmp_path / "x", method="barlow", pool=str(tmp_path / "missing")))
