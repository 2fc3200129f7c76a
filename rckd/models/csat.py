"""CSAT: Convolutional neural network with Spatial Attention by Transformers.

Reconstruction of the RCKD student (Kim et al., Bioengineering 10(11):1279, 2023), whose code is
not public; see DESIGN.md section 2. The blocks follow timm's ``csatv2.py`` (the authors' successor
model, which adds a DCT input stage); CSAT has a conventional patchify stem instead:

* stem: Conv 4x4/4 (3 -> 32) + LayerNorm;
* stage 1: 2 x Block(32); stage 2: Conv 2x2/2 -> 2 x Block(48);
  stage 3: Conv 2x2/2 -> 2 x Block(128) + 2 x TransformerBlock(128);
  stage 4: Conv 2x2/2 -> 2 x TransformerBlock(288); LayerNorm closing stages 1-3;
* head: global average pool -> LayerNorm -> Linear.

``Block`` is a ConvNeXt-V2 block whose output is re-weighted by a spatial attention map computed
from channel mean/max pooled to 7x7 by a conv and a tiny transformer over the 49 scalar tokens.
``TransformerBlock`` is pre-norm MHSA (8 heads x 32) with a depthwise 3x3 positional conv, then a
4x MLP. Without the classifier: 2,982,326 parameters (2.84 x 2^20, the paper's "2.8M") and
1.08 GMACs at 384x384 counted on conv and linear layers. Strides 4/8/16/32; any input size
divisible by 32.

Registered in timm: after ``import rckd``, ``timm.create_model("csat", ...)`` works, including
``features_only=True`` and ``pretrained=True, pretrained_cfg_overlay=dict(file=path)`` for a local
weight file (rckd or timm layout; wrapper key prefixes such as ``backbone.model.`` are stripped).
The RCKD students shipped with rckd (:mod:`rckd.models.pretrained`) are CSAT's pretrained tags:
``timm.create_model("csat.<tag>", pretrained=True, num_classes=n)`` loads the packaged file after
checking both of its pinned checksums (the classifier keeps its random init); the first shipped
tag is CSAT's default, so plain ``pretrained=True`` loads it too. Nothing is downloaded.
"""

from __future__ import annotations

import logging
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import (Attention, DropPath, LayerNorm2d, LayerScale, LayerScale2d, Mlp,
                         NormMlpClassifierHead, trunc_normal_)
from timm.layers.grn import GlobalResponseNorm
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from timm.models._manipulate import checkpoint_seq

from rckd.models.pretrained import PRETRAINED, pretrained_file
from rckd.models.weights import detect_prefix

__all__ = ["CSAT", "csat", "csat_tiny"]

log = logging.getLogger(__name__)


class PosConv(nn.Module):
    """Depthwise 3x3 convolutional position encoding on a token sequence, with a residual."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
        B, N, C = x.shape
        feat = x.transpose(1, 2).reshape(B, C, size[0], size[1])
        return (self.proj(feat) + feat).flatten(2).transpose(1, 2)


class SpatialTransformer(nn.Module):
    """Tiny transformer over the 49 scalar tokens of a 1-channel 7x7 map (single head, dim 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.pos_embed = PosConv(1)
        self.norm1 = nn.LayerNorm(1)
        self.qkv = nn.Linear(1, 3, bias=False)
        self.norm2 = nn.LayerNorm(1)
        self.mlp = Mlp(1, 4, 1, act_layer=nn.GELU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        t = x.flatten(2).transpose(1, 2)
        q, k, v = self.qkv(self.pos_embed(self.norm1(t), (H, W))).unbind(-1)
        attn = (q.unsqueeze(-1) @ k.unsqueeze(-2)).softmax(dim=-1)
        t = t + (attn @ v.unsqueeze(-1))
        t = t + self.mlp(self.norm2(t))
        return t.transpose(1, 2).reshape(B, C, H, W)


class SpatialAttention(nn.Module):
    """Channel mean and max -> pool to 7x7 -> conv 7x7 (2 -> 1) -> tiny transformer."""

    def __init__(self, grid: int = 7) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.conv = nn.Conv2d(2, 1, kernel_size=7, padding=3)
        self.attn = SpatialTransformer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return self.attn(self.conv(self.pool(s)))


class Block(nn.Module):
    """ConvNeXt-V2 block re-weighted by a spatial attention map, then the residual."""

    def __init__(self, dim: int, drop_path: float = 0., ls_init_value: Optional[float] = None) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.grn = GlobalResponseNorm(4 * dim, channels_last=True)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.attn = SpatialAttention()
        self.ls = LayerScale2d(dim, init_values=ls_init_value) if ls_init_value else nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0. else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.dwconv(x).permute(0, 2, 3, 1)
        x = self.pwconv2(self.grn(self.act(self.pwconv1(self.norm(x)))))
        x = x.permute(0, 3, 1, 2)
        attn = F.interpolate(self.attn(x), size=x.shape[2:], mode="bilinear", align_corners=True)
        return shortcut + self.drop_path(self.ls(x * attn))


class TransformerBlock(nn.Module):
    """LN -> depthwise 3x3 pos conv -> MHSA (8 x 32) -> residual; LN -> MLP 4x -> residual."""

    def __init__(self, dim: int, num_heads: int = 8, head_dim: int = 32, mlp_ratio: float = 4.,
                 drop_path: float = 0., ls_init_value: Optional[float] = None) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.pos_embed = PosConv(dim)
        self.attn = Attention(dim, num_heads=num_heads, attn_head_dim=head_dim)
        self.ls1 = LayerScale(dim, init_values=ls_init_value) if ls_init_value else nn.Identity()
        self.drop_path1 = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)
        self.ls2 = LayerScale(dim, init_values=ls_init_value) if ls_init_value else nn.Identity()
        self.drop_path2 = DropPath(drop_path) if drop_path > 0. else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        t = x.flatten(2).transpose(1, 2)
        t = t + self.drop_path1(self.ls1(self.attn(self.pos_embed(self.norm1(t), (H, W)))))
        t = t + self.drop_path2(self.ls2(self.mlp(self.norm2(t))))
        return t.transpose(1, 2).reshape(B, C, H, W)


class CSAT(nn.Module):
    """CSAT backbone + GAP/LN/FC head, timm style (feature_info, forward_features/head/intermediates).

    Args:
        num_classes: classifier outputs (0 for a headless backbone).
        in_chans: input channels.
        stem_chs: channels of the 4x4/4 patchify stem.
        dims: channels of the four stages.
        depths: blocks per stage (conv blocks + transformer blocks).
        transformer_depths: how many of each stage's blocks (at its end) are transformer blocks.
        num_heads, head_dim: attention heads and their width in transformer blocks.
        drop_rate: dropout before the classifier.
        drop_path_rate: stochastic depth, linearly increasing over all blocks.
        ls_init_value: layer-scale init (None: no layer scale).
        global_pool: head pooling type.
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, stem_chs: int = 32,
                 dims: Sequence[int] = (32, 48, 128, 288), depths: Sequence[int] = (2, 2, 4, 2),
                 transformer_depths: Sequence[int] = (0, 0, 2, 2), num_heads: int = 8,
                 head_dim: int = 32, drop_rate: float = 0., drop_path_rate: float = 0.,
                 ls_init_value: Optional[float] = None, global_pool: str = "avg") -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.global_pool = global_pool
        self.grad_checkpointing = False
        self.num_features = self.head_hidden_size = dims[-1]
        self.stem = nn.Sequential(nn.Conv2d(in_chans, stem_chs, kernel_size=4, stride=4),
                                  LayerNorm2d(stem_chs))
        dpr = iter(torch.linspace(0, drop_path_rate, sum(depths)).tolist())
        stages, self.feature_info, prev = [], [], stem_chs
        for i, (dim, depth, t_depth) in enumerate(zip(dims, depths, transformer_depths)):
            layers: List[nn.Module] = []
            if i > 0 or prev != dim:
                layers.append(nn.Conv2d(prev, dim, kernel_size=2, stride=2) if i > 0
                              else nn.Conv2d(prev, dim, kernel_size=1))
            layers += [Block(dim, next(dpr), ls_init_value) for _ in range(depth - t_depth)]
            layers += [TransformerBlock(dim, num_heads, head_dim, drop_path=next(dpr),
                                        ls_init_value=ls_init_value) for _ in range(t_depth)]
            if i < len(dims) - 1:
                layers.append(LayerNorm2d(dim, eps=1e-6))
            stages.append(nn.Sequential(*layers))
            self.feature_info.append(dict(num_chs=dim, reduction=4 * 2 ** i, module=f"stages.{i}"))
            prev = dim
        self.stages = nn.Sequential(*stages)
        self.head = NormMlpClassifierHead(dims[-1], num_classes, pool_type=global_pool,
                                          drop_rate=drop_rate)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        return dict(stem=r"^stem", blocks=r"^stages\.(\d+)" if coarse else
                    [(r"^stages\.(\d+)\.(\d+)", None), (r"^head\.norm", (99999,))])

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            self.global_pool = global_pool
        self.head.reset(num_classes, pool_type=global_pool)

    def forward_intermediates(
            self, x: torch.Tensor, indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False, stop_early: bool = False, output_fmt: str = "NCHW",
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Return the outputs of the stages in ``indices`` (0-3; None: all), timm convention."""
        assert output_fmt == "NCHW", "Output format must be NCHW."
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        stages = self.stages if torch.jit.is_scripting() or not stop_early \
            else self.stages[:max_index + 1]
        intermediates = []
        x = self.stem(x)
        for i, stage in enumerate(stages):
            x = stage(x)
            if i in take_indices:
                intermediates.append(x)
        if intermediates_only:
            return intermediates
        return x, intermediates

    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> List[int]:
        """Drop stages after the last index wanted (and the head); returns kept indices."""
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        self.stages = self.stages[:max_index + 1]
        if prune_norm:
            self.head.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(self.stages, x)
        return self.stages(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def checkpoint_filter_fn(state_dict: dict, model: CSAT) -> dict:
    """Strip wrapper prefixes (``model.``, ``backbone.model.``...) and fill a missing classifier.

    A headless (RCKD-pretrained) checkpoint loaded into a model with a classifier keeps the
    model's freshly initialised ``head.fc``, with a warning.
    """
    target = model.state_dict()
    prefix = detect_prefix(state_dict.keys(), set(target))
    out = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    absent = [k for k in target if k.startswith("head.fc.") and k not in out]
    if absent:
        log.warning("checkpoint has no classifier; %s keep their random init", ", ".join(absent))
        out.update({k: target[k] for k in absent})
    return out


def _create_csat(variant: str, pretrained: bool = False, **kwargs) -> CSAT:
    out_indices = kwargs.pop("out_indices", (0, 1, 2, 3))
    tag = kwargs.get("pretrained_cfg")
    overlay = kwargs.get("pretrained_cfg_overlay") or {}
    if pretrained and not overlay.get("file"):  # a shipped student: verify before timm reads it
        name = f"{variant}.{tag}" if isinstance(tag, str) else next(
            (n for n, e in PRETRAINED.items() if e.arch == variant), None)
        if name in PRETRAINED:
            pretrained_file(name)
    return build_model_with_cfg(
        CSAT, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=out_indices, flatten_sequential=True),
        **kwargs,
    )


def _cfg(url: str = "", **kwargs) -> dict:
    return {
        "url": url, "num_classes": 1000, "input_size": (3, 384, 384), "pool_size": (12, 12),
        "crop_pct": 1.0, "interpolation": "bicubic",
        "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225),
        "first_conv": "stem.0", "classifier": "head.fc",
        "license": "apache-2.0", **kwargs,
    }


def _shipped_cfgs() -> dict:
    """timm cfgs of the shipped RCKD students (backbone-only files; inputs at their mpp)."""
    return {e.name: _cfg(file=str(e.path), num_classes=0, input_size=(3, e.input_size, e.input_size),
                         pool_size=(e.input_size // 32,) * 2, license="cc-by-nc-sa-4.0",
                         notes=(e.description, f"input {e.mpp:g} um/px"))
            for e in PRETRAINED.values() if e.arch in ("csat", "csat_tiny")}


default_cfgs = generate_default_cfgs({
    **_shipped_cfgs(),
    "csat.untrained": _cfg(),
    "csat_tiny.untrained": _cfg(input_size=(3, 224, 224), pool_size=(7, 7)),
})


@register_model
def csat(pretrained: bool = False, **kwargs) -> CSAT:
    """CSAT as in the RCKD paper (2.98 M params headless, 1.08 GMACs at 384x384)."""
    return _create_csat("csat", pretrained=pretrained, **kwargs)


@register_model
def csat_tiny(pretrained: bool = False, **kwargs) -> CSAT:
    """A 4x smaller CSAT for tests and laptop-scale runs (not from the paper)."""
    model_args = dict(stem_chs=16, dims=(16, 24, 64, 144), num_heads=4, head_dim=16)
    return _create_csat("csat_tiny", pretrained=pretrained, **dict(model_args, **kwargs))
