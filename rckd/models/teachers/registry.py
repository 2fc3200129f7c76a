"""The teacher registry: names -> how to build the teacher, where its weights are, their sha256.

Built in:

- ``monuseg-unet`` (alias ``default``): the learned U-Net teacher shipped in ``rckd/weights/``,
  trained on MoNuSeg 2018 (CC BY-NC-SA 4.0; see ``rckd/weights/MODEL_CARD.md``);
- ``classical``: colour deconvolution + Otsu + morphology, no weights; the fallback.

Any teacher checkpoint written by ``rckd teacher train`` (``<stem>.safetensors`` + ``<stem>.json``)
can be used by passing its path as the name, or registered under a name with
:func:`register_teacher`. The shipped file's sha256 is pinned here; a missing file or a wrong
checksum raises an error naming the file.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch

from rckd.io import sha256_file
from rckd.models.teachers.base import TTA_VIEWS, Teacher
from rckd.models.weights import WEIGHTS_DIR
from rckd.runtime import resolve_device

__all__ = ["TeacherEntry", "get_teacher", "register_teacher", "teacher_entries", "teacher_status",
           "load_teacher_file", "WEIGHTS_DIR", "DEFAULT_TEACHER"]

log = logging.getLogger(__name__)

DEFAULT_TEACHER = "monuseg-unet"
_ALIASES = {"default": DEFAULT_TEACHER}
IMAGENET_NORM = "mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)"


@dataclasses.dataclass(frozen=True)
class TeacherEntry:
    """One registered teacher."""

    name: str
    architecture: str
    mpp: float
    normalisation: str
    out_channels: int
    path: str | None = None
    sha256: str | None = None
    description: str = ""
    sidecar_sha256: str | None = None  # of the JSON sidecar (mpp, post-processing, tta), if pinned


_REGISTRY: dict[str, TeacherEntry] = {
    "monuseg-unet": TeacherEntry(
        "monuseg-unet", "unet (half-width resnet18 encoder + dense decoder + full-res skip)", 0.4,
        IMAGENET_NORM, 2, str(WEIGHTS_DIR / "monuseg_unet.safetensors"),
        "e91acadd4f7580fbe6ff64b17f4a168bf1c90f5412ee1e18dc70d32640869ab5", "learned nuclei + boundary segmenter, 24 MoNuSeg 2018 images (CC BY-NC-SA 4.0)",
        "7b9b970682430493d8582a9f397831a57baf03d67c5698c3482805cbc1a39519"),
    "classical": TeacherEntry(
        "classical", "classical (rgb2hed hematoxylin + Otsu + opening)", 0.25, "none (optical density)",
        1, None, None, "deterministic, no weights; the fallback"),
}


def teacher_entries() -> dict[str, TeacherEntry]:
    """A copy of the registry (name -> entry)."""
    return dict(_REGISTRY)


def register_teacher(name: str, path: str | Path, sha256: str | None = None) -> TeacherEntry:
    """Register a teacher checkpoint under ``name`` (its checksum pinned now unless given)."""
    from rckd.models.weights import load_weights, weights_paths
    st_path, _ = weights_paths(path)
    _, meta = load_weights(st_path)
    t = meta.get("teacher") or {}
    entry = TeacherEntry(name, str(t.get("architecture", meta.get("architecture", "?"))),
                         float(t.get("mpp", 0.5)), f"mean {tuple(t.get('mean', ()))}, std {tuple(t.get('std', ()))}",
                         int(t.get("out_channels", 2)), str(st_path), sha256 or sha256_file(st_path),
                         "registered file")
    _REGISTRY[name] = entry
    return entry


def _require_file(entry: TeacherEntry) -> Path:
    path = Path(entry.path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights of teacher '{entry.name}' not found "
                                "(reinstall rckd, train one with 'rckd teacher train', or use --teacher classical)")
    return path


def _check_sha(entry: TeacherEntry, actual: str) -> None:
    if entry.sha256 and actual != entry.sha256:
        raise ValueError(f"{entry.path}: sha256 {actual[:16]}... does not match the registry's "
                         f"{entry.sha256[:16]}... for teacher '{entry.name}' (file corrupt or replaced)")


def _check_sidecar(entry: TeacherEntry) -> None:
    """The shipped sidecar holds the teacher's mpp and post-processing: pinned like the weights."""
    if entry.sidecar_sha256:
        from rckd.models.weights import check_pinned, weights_paths

        check_pinned(weights_paths(entry.path)[1], entry.sidecar_sha256, f"teacher '{entry.name}'")


def _check_file(entry: TeacherEntry) -> Path:
    path = _require_file(entry)
    _check_sha(entry, sha256_file(path))
    _check_sidecar(entry)
    return path


def load_teacher_file(path: str | Path, device: str | torch.device = "cpu", name: str | None = None) -> Teacher:
    """Build a learned teacher from a checkpoint written by ``rckd teacher train`` (checksum verified)."""
    from rckd.models.teachers.unet import UNetTeacher
    from rckd.models.weights import load_weights
    state, meta = load_weights(path)
    t = meta.get("teacher")
    if not t or t.get("architecture") != "unet":
        raise ValueError(f"{path}: not a teacher checkpoint (no 'teacher' entry with architecture 'unet')")
    model = UNetTeacher(t["encoder"], mpp=t["mpp"], width=t["width"], skip=t["skip"],
                        encoder_kwargs=t.get("encoder_kwargs"), name=name or t.get("name", "unet"),
                        postprocess_params=t.get("postprocess"))
    model.load_state_dict({k: v.float() for k, v in state.items()})
    model.tta = int(t.get("tta", 1))
    model.weights_sha256 = str(meta["sha256"])  # the file's, verified by load_weights
    return model.eval().to(device)


def get_teacher(name: str = "default", device: str | torch.device = "cpu", tta: int | None = None) -> Teacher:
    """The teacher ``name`` ("default", "classical", a registered name or a checkpoint path), eval mode.

    ``device`` is a device or its name (``"auto"``: CUDA when available, else CPU). ``tta`` (1, 2,
    4 or 8 dihedral views) overrides the teacher's own test-time augmentation.

    Raises:
        FileNotFoundError: its weights are missing.
        ValueError: unknown name, the weights' checksum does not match, or a bad ``tta``.
    """
    teacher = _build_teacher(name, resolve_device(device))
    if tta:
        if tta not in TTA_VIEWS:
            raise ValueError(f"tta must be one of {TTA_VIEWS}, got {tta}")
        teacher.tta = int(tta)
    return teacher


def _build_teacher(name: str, device: str | torch.device) -> Teacher:
    key = _ALIASES.get(name, name)
    if key == "classical":
        from rckd.models.teachers.classical import ClassicalTeacher
        return ClassicalTeacher().eval()
    if key in _REGISTRY:
        entry = _REGISTRY[key]
        _check_sidecar(entry)  # before its mpp and post-processing are trusted
        teacher = load_teacher_file(_require_file(entry), device, name=key)  # hashes the file once
        _check_sha(entry, teacher.weights_sha256)
        return teacher
    path = Path(name)
    if path.suffix in (".safetensors", ".json") or path.with_name(path.name + ".safetensors").is_file():
        return load_teacher_file(path, device)
    raise ValueError(f"unknown teacher {name!r}: use one of {', '.join(['default', *_REGISTRY])} "
                     "or the path of a teacher .safetensors")


def teacher_status() -> list[tuple[str, str]]:
    """``(name, status)`` per registered teacher: 'ok', 'missing ...' or 'checksum mismatch'."""
    out = []
    for name, entry in _REGISTRY.items():
        if entry.path is None:
            out.append((name, "ok (no weights needed)"))
            continue
        try:
            _check_file(entry)
            out.append((name, f"ok ({entry.path})"))
        except (OSError, ValueError) as exc:
            out.append((name, str(exc).split(" (")[0]))
    return out
