"""The synthetic H&E world: tiles with exact nuclei and gland masks, and synthetic slides.

>>> from rckd.data.synthetic import SyntheticWorld
>>> tile = SyntheticWorld(seed=0, size=64).tile(3)
>>> tile.image.shape, tile.nuclei.dtype.name
((64, 64, 3), 'int32')
"""

from .classes import CLASSES, ClassSpec
from .dataset import TASKS, SyntheticDataset
from .slide import GLASS, write_synthetic_slide
from .world import SyntheticTile, SyntheticWorld

__all__ = ["CLASSES", "ClassSpec", "GLASS", "SyntheticDataset", "SyntheticTile",
           "SyntheticWorld", "TASKS", "write_synthetic_slide"]
