"""The training loop on a toy task: learning, checkpoints, resume, config check, NaN guard."""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from toy import ToyDataset, ToyTask  # noqa: E402

from rckd.engine import NonFiniteLossError, TrainConfig, fit, latest_checkpoint, load_checkpoint, read_metrics
from rckd.runtime import seed_everything


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _cfg(tmp_path, **kw) -> TrainConfig:
    base = dict(out=str(tmp_path / "run"), device="cpu", steps=12, batch_size=8, lr=3e-2, warmup_steps=2,
                workers=0, log_every=1, ckpt_every=4, channels_last=False)
    return dataclasses.replace(TrainConfig(), **{**base, **kw})


def _run(cfg, **task_kw):
    seed_everything(cfg.seed)
    return fit(ToyTask(**task_kw), ToyDataset(), cfg)


def _losses(out):
    rows = {r["step"]: r["train/loss"] for r in read_metrics(out)}
    return [rows[s] for s in sorted(rows)]


def test_fit_learns_logs_and_checkpoints(tmp_path):
    cfg = _cfg(tmp_path, image_every=6)
    res = _run(cfg)
    losses = _losses(cfg.out)
    assert len(losses) == 12 and res.step == 12
    assert losses[-1] < 0.5 * losses[0]
    assert res.checkpoint == latest_checkpoint(cfg.out) and res.checkpoint.name == "step_00000012"
    kept = sorted(p.name for p in (Path(cfg.out) / "checkpoints").glob("step_*"))
    assert kept == ["step_00000008", "step_00000012"]  # keep_checkpoints=2
    state, meta, resume = load_checkpoint(res.checkpoint)
    assert meta["step"] == 12 and meta["config"]["lr"] == 3e-2 and meta["config"]["world_size"] == 1
    assert set(state) == {"net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"}
    assert "optimizer" in resume and len(resume["rng"]) == 1
    rows = read_metrics(cfg.out)
    assert rows[0]["train/lr"] == pytest.approx(1.5e-2) and "train/mae" in rows[0]
    assert rows[-1]["perf/images_per_s"] > 0
    assert any(p.name.startswith("events") for p in (Path(cfg.out) / "tb").iterdir())
    # a finished run asked again does nothing and returns the same checkpoint
    again = _run(cfg)
    assert again.step == 12 and again.history == []


def test_interrupted_run_resumes_like_uninterrupted(tmp_path):
    ref = _cfg(tmp_path / "a")
    _run(ref)
    cfg = _cfg(tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        _run(cfg, crash_at=7)  # dies during step 7, after the step-4 checkpoint
    assert latest_checkpoint(cfg.out).name == "step_00000004"
    _run(cfg)  # resumes from step 4 (fresh task, weights/optimizer/RNG restored)
    a, b = _losses(ref.out), _losses(cfg.out)
    assert len(b) == 12
    assert b == pytest.approx(a, rel=1e-5, abs=1e-7)


def test_resume_refused_when_config_differs(tmp_path):
    cfg = _cfg(tmp_path, steps=4)
    _run(cfg)
    with pytest.raises(ValueError, match=r"refusing to resume.*lr: 0.03 -> 0.01"):
        _run(dataclasses.replace(cfg, lr=1e-2, steps=8))
    # keys that may change (workers, log cadence) do not block resumption
    res = _run(dataclasses.replace(cfg, log_every=2, image_every=None))
    assert res.step == 4
    # resume=false starts over, leaving no checkpoint of the earlier run behind
    res = _run(dataclasses.replace(cfg, lr=1e-2, resume=False, steps=2, ckpt_every=1))
    assert res.step == 2 and len(res.history) == 2
    kept = sorted(p.name for p in (Path(cfg.out) / "checkpoints").glob("step_*"))
    assert kept == ["step_00000001", "step_00000002"]
    assert [r["step"] for r in read_metrics(cfg.out)] == [1, 2]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ea = EventAccumulator(str(Path(cfg.out) / "tb"))
    ea.Reload()
    assert [e.step for e in ea.Scalars("train/loss")] == [1, 2]  # the earlier run's curve is gone


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path):
    cfg = _cfg(tmp_path, log_every=3)
    with pytest.raises(NonFiniteLossError, match=r"nan at step 6.*step_00000004 \(step 4\)"):
        _run(cfg, nan_at=6)
    folder = latest_checkpoint(cfg.out)
    assert folder.name == "step_00000004"
    state, _, _ = load_checkpoint(folder)
    assert all(torch.isfinite(v).all() for v in state.values())


def test_nan_gradients_with_a_finite_loss_never_reach_a_checkpoint(tmp_path):
    cfg = _cfg(tmp_path, log_every=3, ckpt_every=2)
    with pytest.raises(NonFiniteLossError, match=r"gradient norm became nan at step 5.*\(step 4\)"):
        _run(cfg, nan_grad_at=5)  # the step-6 checkpoint would hold the NaN weights of step 5
    folder = latest_checkpoint(cfg.out)
    assert folder.name == "step_00000004"
    state, _, _ = load_checkpoint(folder)
    assert all(torch.isfinite(v).all() for v in state.values())
    assert all(math.isfinite(r["train/grad_norm"]) and r["train/grad_norm"] > 0 for r in read_metrics(cfg.out))


def test_accumulation_matches_larger_batch(tmp_path):
    big = _cfg(tmp_path / "big", steps=4, batch_size=8, ckpt_every=None)
    small = _cfg(tmp_path / "acc", steps=4, batch_size=4, accum_steps=2, ckpt_every=None)

    res = []
    for cfg in (big, small):
        seed_everything(0)
        res.append(fit(ToyTask(noise=0.0), ToyDataset(), cfg).checkpoint)
    sa, _, _ = load_checkpoint(res[0])
    sb, _, _ = load_checkpoint(res[1])
    for k in sa:  # same samples per step, gradient of the same mean loss
        assert torch.allclose(sa[k], sb[k], rtol=1e-4, atol=1e-5), k
    seed_everything(0)
    init = ToyTask().state_dict()
    assert not torch.allclose(sa["net.0.weight"], init["net.0.weight"])


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_on_cpu(tmp_path, precision):
    """The GPU code paths (autocast; GradScaler for fp16) run on CPU too."""
    cfg = _cfg(tmp_path, precision=precision, steps=6, channels_last=True, grad_clip=1.0)
    res = _run(cfg)
    losses = _losses(cfg.out)
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]
    assert res.images_per_s > 0
    _, _, resume = load_checkpoint(res.checkpoint)
    assert resume["scaler"] == {} if precision == "bf16" else resume["scaler"]["scale"] > 0

