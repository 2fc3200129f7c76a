"""Student backbones: one interface over ResNet18, CSAT and any timm model.

``create_backbone(name, weights=None)`` builds the timm model ``name`` headless
(``num_classes=0``, never downloading anything) and wraps it in :class:`Backbone`:

* ``forward_pyramid(x)`` -> four feature maps, at strides 4/8/16/32 when the model has them
  (ResNet18: layer1..layer4; CSAT: its four stages), else its last four levels (``.strides`` says
  which; timm's ``csatv2`` has a stride-8 DCT stem, so 8/16/32/64);
* ``forward(x)`` -> ``(B, num_features)`` pooled embedding (the model's own pre-logits head);
* ``.channels``, ``.strides``, ``.num_features``, ``.mean``, ``.std``, ``.name``;
* :class:`Classifier` (or ``backbone.classifier(n)``) attaches a linear head.

A shipped pretrained name (``<arch>.<tag>``, see :func:`rckd.models.pretrained.list_pretrained`)
builds ``<arch>`` and loads that packaged file after checking its pinned checksums; a plain
architecture name is random init. ``weights`` is a local file: an rckd checkpoint (see :mod:`rckd.models.weights`; it may hold a
whole student, the backbone part is found by its key prefix) or a timm-format state dict
(``.safetensors``, ``.pth``/``.bin`` read with ``torch.load(weights_only=True)``). Keys that do not
fit raise ``ValueError`` naming the file and listing the missing and unexpected keys.
"""

from __future__ import annotations

import logging
import os
from typing import Mapping, Sequence

import timm
import torch
from torch import nn

from rckd.models.weights import detect_prefix, read_state_dict

__all__ = ["Backbone", "Classifier", "create_backbone", "load_backbone_weights", "match_state_dict",
           "PAPER_BACKBONES"]

log = logging.getLogger(__name__)

PAPER_BACKBONES = ("resnet18", "csat", "efficientnet_b0", "convnextv2_atto", "csatv2")
_PYRAMID_STRIDES = (4, 8, 16, 32)
_MAX_LISTED = 500


def _pick_levels(feature_info: Sequence[Mapping]) -> list[int]:
    """Indices of the feature levels at strides 4/8/16/32 (the last such of each), else the last 4."""
    by_stride = {int(f["reduction"]): i for i, f in enumerate(feature_info)}
    if all(s in by_stride for s in _PYRAMID_STRIDES):
        return [by_stride[s] for s in _PYRAMID_STRIDES]
    if len(feature_info) < 4:
        raise ValueError(f"model exposes only {len(feature_info)} feature levels; need 4")
    return list(range(len(feature_info) - 4, len(feature_info)))


class Backbone(nn.Module):
    """A headless timm model seen as a feature pyramid plus a pooled embedding.

    Args:
        model: a timm model built with ``num_classes=0`` that has ``feature_info`` and
            ``forward_intermediates``.
        name: the architecture name (timm registry name).
    """

    def __init__(self, model: nn.Module, name: str) -> None:
        super().__init__()
        if not hasattr(model, "forward_intermediates"):
            raise ValueError(f"timm model {name!r} has no forward_intermediates(); not supported")
        self.model = model
        self.name = name
        info = list(model.feature_info)
        self.levels = tuple(_pick_levels(info))
        self.channels = tuple(int(info[i]["num_chs"]) for i in self.levels)
        self.strides = tuple(int(info[i]["reduction"]) for i in self.levels)
        self.num_features = int(model.num_features)
        cfg = getattr(model, "pretrained_cfg", None) or {}
        self.mean = tuple(float(v) for v in cfg.get("mean", (0.485, 0.456, 0.406)))
        self.std = tuple(float(v) for v in cfg.get("std", (0.229, 0.224, 0.225)))
        self.classifier_name = cfg.get("classifier")
        self.pretrained: str | None = None  # the shipped pretrained name it was built from, if any

    @property
    def input_divisor(self) -> int:
        """Input height and width must be multiples of this (the coarsest stride)."""
        return max(self.strides)

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return the four feature maps ``(B, channels[i], H / strides[i], W / strides[i])``."""
        return list(self.model.forward_intermediates(x, indices=list(self.levels),
                                                     intermediates_only=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled embedding ``(B, num_features)`` (the model's own pre-logits head)."""
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)

    def export_state_dict(self) -> dict[str, torch.Tensor]:
        """The wrapped model's state dict in timm's key layout (what :func:`save_weights` stores)."""
        return self.model.state_dict()

    def load_weights(self, path: str | os.PathLike, prefix: str | None = None) -> dict:
        """Load a weight file into this backbone (see :func:`load_backbone_weights`); returns meta."""
        return load_backbone_weights(self, path, prefix=prefix)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Trade compute for memory where the timm model supports it."""
        if hasattr(self.model, "set_grad_checkpointing"):
            self.model.set_grad_checkpointing(enable)

    def classifier(self, num_classes: int, drop_rate: float = 0.0) -> "Classifier":
        """Return ``Classifier(self, num_classes)``: this backbone plus a linear head."""
        return Classifier(self, num_classes, drop_rate=drop_rate)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, channels={self.channels}, strides={self.strides}"


class Classifier(nn.Module):
    """Backbone -> pooled embedding -> dropout -> linear head (GAP + FC, as fine-tuned in RCKD)."""

    def __init__(self, backbone: Backbone, num_classes: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(backbone.num_features, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)``."""
        return self.head(self.drop(self.backbone(x)))


def _listing(kind: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    more = f", ... and {len(keys) - _MAX_LISTED} more" if len(keys) > _MAX_LISTED else ""
    return f"{len(keys)} {kind} keys [{shown}{more}]"


def match_state_dict(state: Mapping[str, torch.Tensor], model: nn.Module, source: str,
                     prefix: str | None = None, drop: Sequence[str] = ()) -> dict[str, torch.Tensor]:
    """Select, strip and check the part of ``state`` that belongs to ``model``.

    Args:
        state: the file's tensors.
        model: the module to load into (its ``state_dict`` keys are the target).
        source: the file name, for error messages.
        prefix: key prefix of the model's part (e.g. ``"backbone.model."``); detected if None.
        drop: key prefixes (classifier heads) silently ignored when the model lacks them.

    Raises:
        ValueError: listing missing, unexpected and wrongly shaped keys.
    """
    target = model.state_dict()
    if prefix is None:
        prefix = detect_prefix(state.keys(), set(target))
        if prefix:
            log.info("%s: using keys under prefix %r", source, prefix)
    sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    sub = {k: v for k, v in sub.items()
           if k in target or not any(k.startswith(d + ".") for d in drop)}
    missing = sorted(set(target) - set(sub))
    unexpected = sorted(set(sub) - set(target))
    shapes = sorted(f"{k} {tuple(sub[k].shape)} vs {tuple(target[k].shape)}"
                    for k in set(sub) & set(target) if sub[k].shape != target[k].shape)
    if missing or unexpected or shapes:
        parts = [_listing(kind, keys) for kind, keys in
                 (("missing", missing), ("unexpected", unexpected), ("wrongly shaped", shapes)) if keys]
        where = f" under prefix {prefix!r}" if prefix else ""
        raise ValueError(f"{source}: weights{where} do not fit the model: " + "; ".join(parts))
    return sub


def load_backbone_weights(backbone: Backbone, path: str | os.PathLike,
                          prefix: str | None = None) -> dict:
    """Load a weight file into ``backbone`` strictly; return the file's meta (``{}`` if none)."""
    state, meta = read_state_dict(path)
    drop = [backbone.classifier_name] if isinstance(backbone.classifier_name, str) else \
        list(backbone.classifier_name or ())
    sub = match_state_dict(state, backbone.model, str(path), prefix=prefix, drop=drop)
    backbone.model.load_state_dict(sub, strict=True)
    arch = meta.get("architecture") or meta.get("arch")
    if arch and arch != backbone.name:
        log.warning("%s: checkpoint architecture %r loaded into %r", path, arch, backbone.name)
    return meta


def create_backbone(name: str, weights: str | os.PathLike | None = None, prefix: str | None = None,
                    **kwargs) -> Backbone:
    """Build the student backbone ``name`` ("resnet18", "csat" or any timm name).

    Args:
        name: timm registry name (CSAT is registered by ``import rckd``), or a shipped pretrained
            backbone ``<arch>.<tag>`` (:func:`rckd.models.pretrained.list_pretrained`).
        weights: optional local weight file (rckd checkpoint or timm-format state dict).
        prefix: key prefix of the backbone inside ``weights`` (detected when None).
        **kwargs: passed to ``timm.create_model`` (``drop_path_rate``, ``in_chans``...).

    Raises:
        ValueError: unknown name, or weights whose keys do not fit (keys listed).
        FileNotFoundError: ``weights`` does not exist.
    """
    import rckd.models.csat  # noqa: F401  (registers "csat" in timm)
    from rckd.models.pretrained import PRETRAINED, pretrained_file

    if name in PRETRAINED:
        if weights is not None:
            raise ValueError(f"{name} is a shipped pretrained backbone; give weights= with its "
                             f"architecture name ({PRETRAINED[name].arch}) instead")
        backbone = create_backbone(PRETRAINED[name].arch, **kwargs)
        load_backbone_weights(backbone, pretrained_file(name))
        backbone.pretrained = name
        return backbone
    if not timm.is_model(name):
        raise ValueError(f"unknown backbone {name!r}: not a timm model name "
                         f"(paper backbones: {', '.join(PAPER_BACKBONES)})")
    for key in ("pretrained", "features_only", "num_classes"):
        if key in kwargs:
            raise ValueError(f"create_backbone does not take {key!r}; weights come from files only")
    model = timm.create_model(name, pretrained=False, num_classes=0, **kwargs)
    backbone = Backbone(model, name)
    if weights is not None:
        load_backbone_weights(backbone, weights, prefix=prefix)
    return backbone
