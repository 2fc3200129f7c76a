"""Small synthetic slides shared by the tiling tests (written once per session)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def slides(tmp_path_factory):
    """Paths of tiny pyramidal slides: with tissue, without mpp, without tissue."""
    from rckd.data.synthetic import write_synthetic_slide

    root = tmp_path_factory.mktemp("slides")
    return {
        "tissue": write_synthetic_slide(root / "tissue.tiff", 1536, 1024, mpp=0.5, seed=1),
        "tissue2": write_synthetic_slide(root / "other.tiff", 1024, 1024, mpp=0.25, seed=2),
        "nompp": write_synthetic_slide(root / "nompp.tiff", 1024, 768, mpp=None, seed=3),
        "blank": write_synthetic_slide(root / "blank.tiff", 1024, 768, mpp=0.5, seed=4, tissue=False),
    }
