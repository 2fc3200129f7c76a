"""Nuclei teachers: the learned U-Net (shipped, the default), the classical fallback, a registry.

``get_teacher(name="default", device="cpu") -> Teacher``; ``Teacher.response(images, mpp)`` gives
the nuclei probability (B, 1, H, W) at the input resolution (the teacher runs at its own mpp).
See :mod:`~rckd.models.teachers.registry` (names, weights, checksums). Training, scoring and
response caching are applications: :mod:`rckd.teacher`.
"""

from rckd.models.teachers.base import Teacher
from rckd.models.teachers.registry import get_teacher, register_teacher, teacher_entries

__all__ = ["Teacher", "get_teacher", "register_teacher", "teacher_entries"]
