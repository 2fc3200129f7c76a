"""Where rckd looks for real data: ``$RCKD_DATA``, else a fixed folder beside the checkout.

The data root holds the datasets in their official layouts (``monuseg/``, ``glas/``, ``wsi/``,
...; see ``rckd doctor``). It never depends on the current directory: ``$RCKD_DATA`` when set,
otherwise ``shared/data`` in the folder that holds the rckd checkout (``<checkout>/../shared/data``,
the development layout). Set ``RCKD_DATA`` when rckd is installed elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_root", "DATA_ENV"]

DATA_ENV = "RCKD_DATA"


def data_root() -> Path:
    """The data root: ``$RCKD_DATA`` if set, else ``<checkout>/../shared/data`` (absolute)."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return Path(__file__).resolve().parents[2] / "shared" / "data"
