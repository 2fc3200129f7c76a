"""DenseDecoder: full-resolution logits from any declared pyramid, and it can learn."""

from __future__ import annotations

import pytest
import torch

from rckd.models.decoders import DenseDecoder


@pytest.mark.parametrize("strides", [(4, 8, 16, 32), (8, 16, 32, 64)])
@pytest.mark.parametrize("size", [(64, 64), (64, 96)])
def test_output_shape(strides, size):
    channels = (8, 16, 24, 32)
    dec = DenseDecoder(channels, strides, out_channels=3, width=16)
    pyr = [torch.randn(2, c, size[0] // s, size[1] // s) for c, s in zip(channels, strides)]
    out = dec(pyr, size=size)
    assert out.shape == (2, 3, *size)
    assert dec(pyr).shape == (2, 3, *size)  # default size: finest level x its stride


def test_bad_arguments():
    with pytest.raises(ValueError):
        DenseDecoder((8, 16), (4, 8, 16), 1)
    with pytest.raises(ValueError):
        DenseDecoder((8, 16), (4, 16), 1)
    dec = DenseDecoder((8, 16), (4, 8), 1)
    with pytest.raises(ValueError, match="2 pyramid levels"):
        dec([torch.zeros(1, 8, 4, 4)])


def test_decoder_fits_a_fine_pattern():
    """The decoder alone learns a full-resolution checkerboard of 8-px cells from a fixed pyramid."""
    torch.manual_seed(0)
    channels, strides = (4, 4, 4, 4), (4, 8, 16, 32)
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    target = (((yy // 8) + (xx // 8)) % 2).float()[None, None]
    # pyramid: the target pooled to each stride, plus noise channels
    pyr = [torch.cat([torch.nn.functional.avg_pool2d(target, s), torch.randn(1, 3, 64 // s, 64 // s)], 1)
           for s in strides]
    dec = DenseDecoder(channels, strides, 1, width=8)
    opt = torch.optim.Adam(dec.parameters(), 2e-2)
    for _ in range(40):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(dec(pyr, size=(64, 64)), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    dec.eval()
    acc = ((dec(pyr, size=(64, 64)) > 0).float() == target).float().mean().item()
    assert acc > 0.9, acc
