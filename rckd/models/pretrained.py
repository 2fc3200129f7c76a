"""Pretrained student backbones shipped in the package: names, files, pinned checksums.

A name is ``<arch>.<tag>`` (timm's convention): ``csat.rckd_he5k`` is CSAT distilled by RCKD
on the real CPU pool of ``experiments/real_cpu.yaml``. Each entry's weights are an fp16
``safetensors`` file in ``rckd/weights/`` beside its JSON sidecar and a model card; both files'
sha256 are pinned here, so a replaced weight file *or* an edited sidecar (say, another mpp) is
refused. Nothing is ever downloaded::

    from rckd.models import list_pretrained, create_backbone
    list_pretrained()                                  # ['csat.rckd_he5k', 'resnet18.rckd_he5k']
    backbone = create_backbone("csat.rckd_he5k")    # weights loaded and verified
    import rckd, timm
    model = timm.create_model("csat.rckd_he5k", pretrained=True, num_classes=4)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from typing import Any

from rckd.io import sha256_file
from rckd.models.weights import WEIGHTS_DIR, load_weights, save_weights, to_half, verify_pinned

__all__ = ["PretrainedEntry", "PRETRAINED", "list_pretrained", "pretrained_entry", "pretrained_file",
           "export_student"]


@dataclasses.dataclass(frozen=True)
class PretrainedEntry:
    """One shipped backbone: architecture, weight file (stem in ``rckd/weights``), checksums."""

    name: str
    arch: str
    stem: str
    sha256: str
    sidecar_sha256: str
    mpp: float
    input_size: int
    description: str

    @property
    def path(self) -> Path:
        """The ``.safetensors`` file."""
        return WEIGHTS_DIR / f"{self.stem}.safetensors"

    @property
    def tag(self) -> str:
        """The part after the architecture (timm's pretrained tag)."""
        return self.name.split(".", 1)[1]


_POOL = ("RCKD, experiments/real_cpu.yaml: 8,000 tiles seen of a 5,402-tile pool of real H&E at "
         "1.0 um/px (TCGA and CMU slides, MoNuSeg train, Lymphoma/GlaS/CRCHisto train splits)")
_ENTRIES: tuple[PretrainedEntry, ...] = (
    PretrainedEntry("csat.rckd_he5k", "csat", "csat_rckd_he5k",
                    "6019d88f6e114c1f0fa6af7c313038f6763ab8b20e746e2180e57ee947b8dcb2",
                    "0661ce7cb0d0d439c522ff6f6f2dfdffca68fb2270cd8475d37c24248cd46e2e", 1.0, 128, _POOL),
    PretrainedEntry("resnet18.rckd_he5k", "resnet18", "resnet18_rckd_he5k",
                    "ac8fca7690cd76244542499201a175ba50acaa4a8fa4d42417eb7e26098b06e6",
                    "7092d8564194b9e6f2747fdae57ae62c6d48cbf5f6e1c7d8dbb9cb926bdf43e0", 1.0, 128, _POOL),
)

PRETRAINED: dict[str, PretrainedEntry] = {e.name: e for e in _ENTRIES}


def list_pretrained(arch: str | None = None) -> list[str]:
    """Names of the shipped pretrained backbones (of one architecture if given), sorted."""
    return sorted(n for n, e in PRETRAINED.items() if arch is None or e.arch == arch)


def pretrained_entry(name: str) -> PretrainedEntry:
    """The entry of a shipped backbone; ``ValueError`` naming the known ones otherwise."""
    if name not in PRETRAINED:
        known = ", ".join(list_pretrained()) or "none"
        raise ValueError(f"no pretrained backbone {name!r} (shipped: {known})")
    return PRETRAINED[name]


def pretrained_file(name: str) -> Path:
    """The verified ``.safetensors`` path of a shipped backbone (both checksums checked)."""
    e = pretrained_entry(name)
    return verify_pinned(e.path, e.sha256, e.sidecar_sha256, f"pretrained backbone '{name}'")


def export_student(backbone_file: str | Path, stem: str, extra: dict[str, Any],
                   folder: str | Path = WEIGHTS_DIR) -> tuple[Path, str, str]:
    """Write a pretrained run's ``backbone.safetensors`` as ``<folder>/<stem>`` in fp16.

    The sidecar keeps the run's meta (architecture, mpp, normalisation, config, teacher) plus
    ``extra`` (pool, budget, results, licence). Returns the file and the two sha256 to pin in
    :data:`PRETRAINED`.
    """
    state, meta = load_weights(backbone_file)
    meta = {k: v for k, v in meta.items() if k not in ("sha256", "format", "num_tensors", "num_params", "file")}
    path = save_weights(to_half(state), Path(folder) / stem, {**meta, **extra, "dtype": "float16"})
    return path, sha256_file(path), sha256_file(path.with_suffix(".json"))
