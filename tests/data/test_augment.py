"""Device-side augmentation: HED against skimage, shared geometry, stain jitter on input only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.color import rgb2hed

from rckd.data.augment import (PairedAugment, ViewAugment, hed_jitter, hed_to_rgb, normalize,
                               random_dihedral, rgb_to_hed, to_float)


def _images(b=4, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 3, size, size), dtype=torch.uint8, generator=g)


def test_to_float_and_normalize():
    x = to_float(torch.tensor([0, 255, 51], dtype=torch.uint8).view(1, 3, 1, 1))
    assert x.flatten().tolist() == pytest.approx([0.0, 1.0, 0.2])
    y = normalize(x, (0.5, 0.5, 0.2), (0.5, 0.25, 1.0), channels_last=True)
    assert y.flatten().tolist() == pytest.approx([-1.0, 2.0, 0.0])
    assert y.is_contiguous(memory_format=torch.channels_last)


def test_rgb_to_hed_matches_skimage_and_round_trips():
    x = to_float(_images(1, 8)).double()
    ours = rgb_to_hed(x)[0].permute(1, 2, 0).numpy()
    ref = rgb2hed(x[0].permute(1, 2, 0).numpy())
    np.testing.assert_allclose(np.maximum(ours, 0), ref, atol=1e-6)
    x = x.clamp_min(1e-3)
    assert torch.allclose(hed_to_rgb(rgb_to_hed(x)), x, atol=1e-6)


def test_hed_jitter_changes_stains_within_bounds():
    torch.manual_seed(0)
    x = to_float(_images())
    assert torch.equal(hed_jitter(x, 0.0, 0.0), x)
    y = hed_jitter(x, 0.2, 0.0)
    ratio = (rgb_to_hed(y.double().clamp_min(1e-3)) / rgb_to_hed(x.double().clamp_min(1e-3)))
    assert not torch.allclose(y, x)
    assert y.min() >= 0 and y.max() <= 1
    # scale-only jitter multiplies each stain by one factor per image in [0.8, 1.2] (where unclipped)
    med = ratio[:, :2].flatten(2).median(dim=2).values
    assert ((med > 0.79) & (med < 1.21)).all()


def test_random_dihedral_is_one_of_eight():
    torch.manual_seed(1)
    x = torch.arange(2 * 1 * 3 * 3, dtype=torch.float32).view(2, 1, 3, 3).repeat(8, 1, 1, 1)
    y = random_dihedral(x)
    for i in range(len(x)):
        options = [torch.rot90(f, k, dims=(-2, -1)) for f in (x[i], x[i].flip(-1)) for k in range(4)]
        assert any(torch.equal(y[i], o) for o in options)
    assert len({tuple(t.flatten().tolist()) for t in y[::2]}) > 1


def test_paired_augment_same_geometry_on_target_colour_on_image_only():
    x = to_float(_images(6, 32))
    target = x[:, :1].clone()
    plain = PairedAugment(24, crop_scale=(0.3, 1.0), hed_sigma=0, hed_bias=0, brightness=0, contrast=0,
                          saturation=0, hue=0)
    coloured = PairedAugment(24, crop_scale=(0.3, 1.0), hed_sigma=0.3, hed_bias=0.1, brightness=0.3)
    torch.manual_seed(7)
    img_g, t_g = plain(x, target)
    torch.manual_seed(7)
    img_c, t_c = coloured(x, target)
    assert img_g.shape == (6, 3, 24, 24) and t_g.shape == (6, 1, 24, 24)
    assert torch.allclose(t_g, img_g[:, :1], atol=1e-6)   # geometry identical on image and target
    assert torch.allclose(t_c, t_g, atol=1e-6)            # colour ops never touch the target
    assert (img_c - img_g).abs().mean() > 0.01             # ...but do change the student input
    assert not torch.allclose(t_g, torch.nn.functional.interpolate(target, size=24))  # crops happened


def test_view_augment_two_views_differ():
    torch.manual_seed(0)
    x = to_float(_images(4, 32))
    aug = ViewAugment(24, solarize_p=0.2)
    v1, v2 = aug(x), aug(x)
    assert v1.shape == (4, 3, 24, 24) and 0 <= v1.min() and v1.max() <= 1
    assert (v1 - v2).abs().mean() > 0.01
