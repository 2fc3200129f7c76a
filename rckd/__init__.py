"""rckd: Response-based Cross-task Knowledge Distillation for computational pathology.

Importing ``rckd`` registers the CSAT student in timm's model registry, so
``timm.create_model("csat", ...)`` works afterwards. Everything else is imported lazily.
"""

import os

__version__ = "0.1.0"

# OpenMP threads that spin while waiting make torch ~10x slower as soon as another process
# shares the cores (measured: ResNet18 step 0.21 s -> 2.9 s with 2 threads on a busy 2-core
# machine); waiting passively costs little on an idle machine. Only a default: set
# OMP_WAIT_POLICY yourself to override, and it has no effect if torch was imported first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _register_models() -> None:
    """Register rckd's timm models (CSAT) if the models package is available."""
    try:
        from rckd.models import csat  # noqa: F401  (registration side effect is the API)
    except ImportError:  # pragma: no cover - only while the models package is incomplete
        pass


_register_models()
