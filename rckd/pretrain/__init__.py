"""Pretraining methods on the one engine: RCKD, Barlow Twins, MoCo v2 and ImageNet init.

``METHODS`` maps a method name to its :class:`~rckd.pretrain.base.PretrainTask` class
(``"imagenet"`` maps to None: it loads weights and trains nothing). ``rckd.pretrain.run.pretrain(cfg)``
builds the pool, the task and the probes from a :class:`~rckd.pretrain.run.PretrainConfig`, trains
with :func:`rckd.engine.fit` and exports the backbone alone (``<out>/backbone.safetensors`` + JSON),
which ``create_backbone(name, weights=path)`` and ``timm.create_model(name, pretrained=True,
pretrained_cfg_overlay=dict(file=path, num_classes=0))`` load.

Each method lives in one module: a dataclass of its own options (``barlow.proj_dim=512`` on the
command line) and a task whose ``build(backbone, cfg, mpp)`` reads them. Adding a method is that
module plus its registration: an entry here and its options section in ``PretrainConfig``.
"""

from rckd.pretrain.barlow import BarlowTask
from rckd.pretrain.base import PretrainTask
from rckd.pretrain.distill import RCKDTask
from rckd.pretrain.moco import MoCoTask

METHODS: dict[str, type[PretrainTask] | None] = {
    "rckd": RCKDTask,
    "barlow": BarlowTask,
    "moco": MoCoTask,
    "imagenet": None,
}

__all__ = ["METHODS", "PretrainTask", "RCKDTask", "BarlowTask", "MoCoTask"]
