"""Teachers run at their own mpp: inputs are resampled there and the maps mapped back."""

import numpy as np
import pytest
import torch

from rckd.models.teachers.base import TTA_VIEWS, Teacher, dihedral_mean, resample, to_float


class _Probe(Teacher):
    """Returns the input's first channel; records the size it was run at."""

    name, mpp, out_channels, input_divisor = "probe", 0.5, 1, 32

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward_maps(self, x):
        self.seen.append(tuple(x.shape[-2:]))
        return x[:, :1]

    def postprocess(self, maps, mpp):
        return (maps[0] > 0.5).astype(np.int32)


def test_response_is_at_input_resolution_and_teacher_ran_at_its_mpp():
    t = _Probe()
    images = torch.randint(0, 256, (2, 3, 100, 130), dtype=torch.uint8)
    r = t.response(images, mpp=0.25)
    assert r.shape == (2, 1, 100, 130) and r.dtype == torch.float32
    assert 0 <= float(r.min()) and float(r.max()) <= 1
    assert t.teacher_size((100, 130), 0.25) == (50, 65)
    assert t.seen == [(64, 96)]  # 50 x 65 padded to multiples of 32


def test_same_mpp_round_trip_is_exact_and_coarse_content_survives():
    t = _Probe()
    x = torch.rand(1, 3, 64, 64)
    assert torch.allclose(t.response(x, mpp=0.5), x[:, :1])       # no resampling at its own mpp
    assert t.teacher_size((64, 64), 0.505) == (64, 64)            # within 2 %: not resampled
    smooth = torch.linspace(0, 1, 128).view(1, 1, 1, 128).expand(1, 3, 96, 128)
    back = t.response(smooth, mpp=0.25)                           # down x2 and back up
    assert back.shape == (1, 1, 96, 128)
    assert float((back - smooth[:, :1]).abs()[..., 4:-4].max()) < 0.02


def test_upsampled_input_from_coarser_mpp():
    t = _Probe()
    r = t.response(torch.rand(1, 3, 40, 40), mpp=1.0)
    assert r.shape == (1, 1, 40, 40) and t.seen == [(96, 96)]     # 80 x 80 padded


def test_input_checks():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        to_float(torch.zeros(1, 4, 8, 8))
    with pytest.raises(ValueError, match="mpp"):
        _Probe().response(torch.zeros(1, 3, 8, 8), mpp=0)
    assert resample(torch.zeros(1, 1, 8, 8), (4, 4)).shape == (1, 1, 4, 4)


def test_dihedral_views_are_inverted_exactly():
    x = torch.rand(2, 3, 48, 64)  # not square: transposed views change the shape
    for views in TTA_VIEWS:
        assert torch.allclose(dihedral_mean(lambda y: y * 2, x, views), x * 2, atol=1e-6)
    seen = []
    dihedral_mean(lambda y: seen.append(y) or y, x, 8)
    assert len({tuple(v.flatten()[:8].tolist()) for v in seen}) == 8  # 8 distinct views
    with pytest.raises(ValueError, match="views"):
        dihedral_mean(lambda y: y, x, 3)


def test_tta_averages_an_orientation_dependent_teacher():
    class _LeftEdge(_Probe):
        def forward_maps(self, x):  # 1 on the first column only: not rotation invariant
            out = torch.zeros_like(x[:, :1])
            out[..., 0] = 1.0
            return out

    t = _LeftEdge()
    x = torch.rand(1, 3, 64, 64)
    assert float(t.response(x, 0.5).mean()) == pytest.approx(1 / 64)
    t.tta = 4  # the four rotations put the marked column on each of the four edges once
    r = t.response(x, 0.5)[0, 0]
    for edge in (r[:, 0], r[:, -1], r[0, :], r[-1, :]):
        assert torch.allclose(edge[1:-1], torch.full((62,), 0.25))
    assert float(r[0, 0]) == pytest.approx(0.5) and float(r[1:-1, 1:-1].abs().max()) == 0.0
    t.tta = 2  # identity and half turn: left and right columns
    r = t.response(x, 0.5)[0, 0]
    assert float(r[:, 0].min()) == float(r[:, -1].min()) == 0.5 and float(r[0, 1:-1].max()) == 0.0


def test_response_under_cpu_bf16_autocast():
    """RCKD with the teacher inside a bf16 step: the antialiased shrink has no bf16 CPU kernel."""
    x = torch.rand(1, 2, 40, 40)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.allclose(resample(x.bfloat16(), (20, 20)).float(), resample(x, (20, 20)), atol=1e-2)
        r = _Probe().response(torch.randint(0, 256, (1, 3, 100, 100), dtype=torch.uint8), mpp=0.25)
    assert r.shape == (1, 1, 100, 100)
