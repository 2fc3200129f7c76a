"""MAC counter: exact on hand-computed layers, and the paper's ResNet18 figures."""

from __future__ import annotations

import pytest
import torch
from timm.layers import Attention
from torch import nn

from rckd.models import create_backbone
from rckd.models.flops import count_macs, count_params


def test_conv_and_linear_by_hand():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),  # depthwise
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    got = count_macs(model, (3, 16, 16), batch=2, by_kind=True)
    conv = 16 * 16 * 8 * 3 * 9 + 16 * 16 * 8 * 1 * 9
    assert got["conv"] == conv and got["linear"] == 8 * 5 and got["total"] == conv + 40
    full = count_macs(model, (3, 16, 16), elementwise=True, by_kind=True)
    # conv bias (8 x 256) + linear bias (5) + ReLU (8 x 256) + pooling (8 x 256 inputs)
    assert full["elementwise"] == 3 * 8 * 256 + 5


def test_attention_matmuls():
    attn = Attention(64, num_heads=4, attn_head_dim=8)

    class Tokens(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = attn

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.attn(x.flatten(2).transpose(1, 2))

    model = Tokens()
    plain = count_macs(model, (64, 5, 6))
    n = 30
    assert plain == n * 64 * 96 + n * 32 * 64  # qkv (64 -> 3 x 32) + proj (32 -> 64)
    assert count_macs(model, (64, 5, 6), attention=True) - plain == 2 * 4 * n * n * 8


def test_resnet18_paper_figures():
    r18 = create_backbone("resnet18")
    assert count_params(r18, 2**20) == pytest.approx(10.66, abs=0.005)  # printed "10.6M"
    kinds = count_macs(r18, (3, 384, 384), elementwise=True, by_kind=True)
    assert kinds["conv"] + kinds["linear"] == 5_329_649_664  # thop/fvcore conv+linear: 5.33 G
    # the paper's 5.35 G (and 1.82 G at 224) is the ptflops-style count
    assert round(kinds["total"] / 1e9, 2) == 5.35
    assert round(count_macs(r18, (3, 224, 224), elementwise=True) / 1e9, 2) == 1.82


def test_counter_leaves_model_unchanged():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).train()
    count_macs(model, (3, 8, 8))
    assert model.training and not model[0]._forward_hooks
