"""Tissue classes of the synthetic world, as data.

The four classes follow the BACH breast grading (normal, benign, in situ, invasive carcinoma).
They differ only in nuclear morphology and tissue architecture: gland size and filling, nuclear
size, shape, pleomorphism, hyperchromasia and crowding. Staining, illumination, stroma,
fibroblasts and lymphocytes are drawn from the same distributions for every class. Ranges
overlap between neighbouring classes, so single tiles can be ambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ClassSpec", "CLASSES"]

Range = tuple[float, float]


@dataclass(frozen=True)
class ClassSpec:
    """Morphology of one tissue class. Lengths in microns, densities per 10^4 um^2."""

    name: str
    gland_density: float          # expected gland centres per 10^4 um^2 (0: no glands)
    gland_radius: Range           # outer radius
    gland_aspect: Range           # minor / major axis ratio
    gland_wobble: float           # boundary irregularity
    epithelium: Range             # epithelium thickness (basal membrane to lumen)
    filled: bool                  # lumen filled by tumour cells (cribriform holes only)
    layers: tuple[int, int]       # rows of epithelial nuclei along the boundary
    nucleus_diameter: Range       # per-tile mean nuclear diameter
    pleomorphism: float           # per-nucleus std of log size
    nucleus_aspect: Range         # major / minor axis ratio
    nucleus_wobble: Range         # nuclear boundary irregularity
    hyperchromasia: Range         # hematoxylin concentration of nuclei
    texture: Range                # chromatin coarseness
    spacing: float                # nuclear centre spacing / diameter (crowding)
    nest_fraction: Range = (0.0, 0.0)   # tile fraction covered by invasive nests


CLASSES: tuple[ClassSpec, ...] = (
    ClassSpec("normal", gland_density=1.6, gland_radius=(16, 28), gland_aspect=(0.6, 1.0),
              gland_wobble=0.05, epithelium=(9, 12), filled=False, layers=(1, 1),
              nucleus_diameter=(5.0, 6.5), pleomorphism=0.05, nucleus_aspect=(1.1, 1.5),
              nucleus_wobble=(0.0, 0.04), hyperchromasia=(1.15, 1.45), texture=(0.1, 0.3),
              spacing=1.15),
    ClassSpec("benign", gland_density=0.7, gland_radius=(28, 50), gland_aspect=(0.5, 0.95),
              gland_wobble=0.12, epithelium=(11, 16), filled=False, layers=(1, 2),
              nucleus_diameter=(6.3, 8.0), pleomorphism=0.09, nucleus_aspect=(1.1, 1.5),
              nucleus_wobble=(0.02, 0.07), hyperchromasia=(1.2, 1.55), texture=(0.2, 0.45),
              spacing=1.08),
    ClassSpec("in_situ", gland_density=0.45, gland_radius=(40, 70), gland_aspect=(0.6, 1.0),
              gland_wobble=0.08, epithelium=(14, 20), filled=True, layers=(1, 1),
              nucleus_diameter=(8.0, 10.5), pleomorphism=0.14, nucleus_aspect=(1.0, 1.45),
              nucleus_wobble=(0.04, 0.10), hyperchromasia=(1.35, 1.75), texture=(0.35, 0.65),
              spacing=1.08),
    ClassSpec("invasive", gland_density=0.0, gland_radius=(0, 0), gland_aspect=(1, 1),
              gland_wobble=0.0, epithelium=(0, 0), filled=False, layers=(0, 0),
              nucleus_diameter=(9.5, 13.0), pleomorphism=0.24, nucleus_aspect=(1.0, 1.8),
              nucleus_wobble=(0.08, 0.16), hyperchromasia=(1.5, 2.0), texture=(0.5, 0.9),
              spacing=1.25, nest_fraction=(0.25, 0.55)),
)
