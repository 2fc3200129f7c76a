"""rckd: Response-based Cross-task Knowledge Distillation for computational pathology.

Importing ``rckd`` registers the CSAT student in timm's model registry, so
``timm.create_model("csat", ...)`` works afterwards. Everything else is imported lazily.
"""

__version__ = "0.1.0"


def _register_models() -> None:
    """Register rckd's timm models (CSAT) if the models package is available."""
    try:
        from rckd.models import csat  # noqa: F401  (registration side effect is the API)
    except ImportError:  # pragma: no cover - only while the models package is incomplete
        pass


_register_models()
