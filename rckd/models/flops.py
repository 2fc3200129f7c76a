"""Multiply-accumulate counter, thop/fvcore style, via forward hooks.

The RCKD paper's convention (DESIGN.md section 2): MACs of convolution and linear layers only,
per image, at the stated input size (its tables use 384x384; ResNet18 without its classifier then
counts 5.35 G). Normalisation, activations, pooling, interpolation and biases are not counted.
With ``attention=True`` the matrix products inside attention (``q @ k^T`` and ``attn @ v``) are
added, which fvcore also counts but thop does not. With ``elementwise=True`` the counter also adds
what ptflops adds: biases (one per output element), normalisation layers (2 per element when
affine), activations and pooling (1 per element). The paper's ResNet18 figures (1.82 G at 224,
5.35 G at 384) are reproduced exactly by that convention; conv + linear alone gives 1.81 / 5.33.

* ``nn.ConvNd``: ``out.numel() * in_channels / groups * prod(kernel_size)``
* ``nn.Linear``: ``out.numel() * in_features``
* attention (timm ``Attention`` and CSAT's spatial transformer): ``2 * B * heads * N^2 * head_dim``
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn

__all__ = ["count_macs", "count_params"]


def count_params(module: nn.Module, units: float = 1.0) -> float:
    """Number of parameters divided by ``units`` (1e6 for millions, 2**20 for the paper's "M")."""
    return sum(p.numel() for p in module.parameters()) / units


def _conv(m: nn.modules.conv._ConvNd, inp: tuple, out: torch.Tensor) -> int:
    return out.numel() * (m.in_channels // m.groups) * math.prod(m.kernel_size)


def _linear(m: nn.Linear, inp: tuple, out: torch.Tensor) -> int:
    return out.numel() * m.in_features


_NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
_ACTS = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh,
         nn.LeakyReLU)
_POOLS = (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
          nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)


def _bias(m: nn.Module, inp: tuple, out: torch.Tensor) -> int:
    return out.numel() if getattr(m, "bias", None) is not None else 0


def _norm(m: nn.Module, inp: tuple, out: torch.Tensor) -> int:
    affine = getattr(m, "affine", None) or getattr(m, "elementwise_affine", False)
    return inp[0].numel() * (2 if affine else 1)


def _elements_out(m: nn.Module, inp: tuple, out: torch.Tensor) -> int:
    return out.numel()


def _elements_in(m: nn.Module, inp: tuple, out: torch.Tensor) -> int:
    return inp[0].numel()


def _timm_attention(m: nn.Module, inp: tuple, out: torch.Tensor) -> int:
    x = inp[0]
    b, n = x.shape[0], math.prod(x.shape[1:-1])
    return 2 * b * m.num_heads * n * n * m.head_dim


def _scalar_token_attention(m: nn.Module, inp: tuple, out: torch.Tensor) -> int:
    x = inp[0]  # (B, 1, H, W): one head of width 1 over H*W tokens
    n = x.shape[-2] * x.shape[-1]
    return 2 * x.shape[0] * n * n


def _attention_rules() -> list[tuple[type, Callable]]:
    from timm.layers import Attention

    from rckd.models.csat import SpatialTransformer
    rules: list[tuple[type, Callable]] = [(Attention, _timm_attention),
                                          (SpatialTransformer, _scalar_token_attention)]
    try:
        from timm.models.csatv2 import SpatialTransformerBlock
        rules.append((SpatialTransformerBlock, _scalar_token_attention))
    except ImportError:  # pragma: no cover - older timm
        pass
    return rules


def count_macs(model: nn.Module, input_size: Sequence[int] = (3, 384, 384), batch: int = 1,
               attention: bool = False, elementwise: bool = False, by_kind: bool = False,
               forward: Callable[[nn.Module, torch.Tensor], object] | None = None) -> int | dict:
    """Count multiply-accumulates per image for one forward pass of ``model``.

    Args:
        model: the module (counted as it is; pass a headless backbone for the paper's figures).
        input_size: ``(C, H, W)`` of the input.
        batch: images in the probe batch (the result is per image).
        attention: also count attention matrix products.
        elementwise: also count biases, norms, activations and pooling (ptflops style).
        by_kind: return ``{"conv": .., "linear": .., "attention": .., "elementwise": ..,
            "total": ..}``.
        forward: how to call the model (default ``model(x)``).

    Returns:
        Total MACs per image (int), or the per-kind dict.
    """
    counts = {"conv": 0, "linear": 0, "attention": 0, "elementwise": 0}
    rules: list[tuple[type | tuple, str, Callable]] = [(nn.modules.conv._ConvNd, "conv", _conv),
                                               (nn.Linear, "linear", _linear)]
    if attention:
        rules += [(cls, "attention", fn) for cls, fn in _attention_rules()]
    if elementwise:
        from timm.layers import LayerNorm2d
        rules += [((nn.modules.conv._ConvNd, nn.Linear), "elementwise", _bias),
                  ((*_NORMS, LayerNorm2d), "elementwise", _norm),
                  (_ACTS, "elementwise", _elements_out), (_POOLS, "elementwise", _elements_in)]
    handles = []

    def make_hook(kind: str, fn: Callable) -> Callable:
        def hook(m: nn.Module, inp: tuple, out: torch.Tensor) -> None:
            counts[kind] += int(fn(m, inp, out))
        return hook

    for m in model.modules():
        for cls, kind, fn in rules:
            if isinstance(m, cls):
                handles.append(m.register_forward_hook(make_hook(kind, fn)))
    p = next(model.parameters(), None)
    x = torch.zeros(batch, *input_size, device=p.device if p is not None else "cpu",
                    dtype=p.dtype if p is not None else torch.float32)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            forward(model, x) if forward is not None else model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    per_image = {k: v // batch for k, v in counts.items()}
    per_image["total"] = sum(per_image.values())
    return per_image if by_kind else per_image["total"]
