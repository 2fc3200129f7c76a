"""rckd: Response-based Cross-task Knowledge Distillation for computational pathology.

``import rckd`` is cheap: it imports neither torch nor timm, and subpackages load on first use
(``rckd.models``, ``rckd.data``, ...), so ``rckd tile`` and ``rckd --help`` start fast.

CSAT, rckd's student, is registered in timm's model registry as soon as both rckd and timm are
imported, in either order, so ``import rckd, timm; timm.create_model("csat")`` works. If timm is
already imported, importing rckd registers CSAT at once; otherwise rckd leaves a one-shot import
hook (:class:`_RegisterWithTimm`) that registers CSAT right after timm's own import finishes.
``import rckd.models`` (or ``rckd.models.csat``) registers it explicitly.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import os
import sys
from typing import Any

__version__ = "0.1.0"

# OpenMP threads that spin while waiting make torch ~10x slower as soon as another process
# shares the cores (measured: ResNet18 step 0.21 s -> 2.9 s with 2 threads on a busy 2-core
# machine); waiting passively costs little on an idle machine. Only a default: set
# OMP_WAIT_POLICY yourself to override, and it has no effect if torch was imported first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_SUBPACKAGES = ("cli", "commands", "config", "data", "demo", "doctor", "engine", "finetune", "grid",
                "io", "losses", "metrics", "models", "paths", "pretrain", "report", "reproduce",
                "runtime", "teacher", "weightfile")


def __getattr__(name: str) -> Any:
    """Import subpackages on first attribute access (``rckd.models.create_backbone``)."""
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _register_csat() -> None:
    importlib.import_module("rckd.models.csat")  # @register_model runs on import


class _AfterExec(importlib.abc.Loader):
    """Wraps timm's loader: execute timm, then register CSAT."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec):  # noqa: ANN001 - importlib protocol
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:  # noqa: ANN001
        self.loader.exec_module(module)
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _RegisterWithTimm)]
        _register_csat()

    def __getattr__(self, name: str) -> Any:  # get_source, is_package, resource readers...
        return getattr(self.loader, name)


class _RegisterWithTimm(importlib.abc.MetaPathFinder):
    """Finds ``timm`` as the other finders would, with a loader that then registers CSAT.

    It removes itself once timm is loaded (a mere ``find_spec("timm")`` leaves it in place).
    """

    _finding = False

    def find_spec(self, name, path=None, target=None):  # noqa: ANN001 - importlib protocol
        if name != "timm" or self._finding:
            return None
        self._finding = True
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._finding = False
        if spec is not None and spec.loader is not None:
            spec.loader = _AfterExec(spec.loader)
        return spec


if "timm" in sys.modules:
    _register_csat()
elif not any(isinstance(f, _RegisterWithTimm) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWithTimm())
