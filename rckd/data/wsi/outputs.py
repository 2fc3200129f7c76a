"""A slide's outputs in a tiling run folder, and when they count as finished.

Per slide: the tile set ``patches/<slide>.h5`` (TRIDENT's ``<slide>_patches.h5`` with
``--trident-names``), ``thumbnails/<slide>.jpg`` and ``state/<slide>.json``. Nothing finished is
lost:

- a slide is finished when its state says ``done`` (or ``no_tissue``) and the files agree with
  it (tile count, slide fingerprint, pixels present, no duplicate coordinates); anything else is
  redone from scratch;
- a finished slide made with other settings is never replaced silently: :func:`settings_conflict`
  names the option that differs, and the run stops before any slide is touched (``--overwrite``
  replaces instead);
- temporary files of a killed run are removed when their slide is started again.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from rckd.data.wsi import h5format
from rckd.data.wsi.report import read_state
from rckd.io import stale_temporaries

__all__ = ["SlideOutputs", "FINISHED", "settings_conflict", "verified_state"]

FINISHED = ("done", "no_tissue")


@dataclasses.dataclass(frozen=True)
class SlideOutputs:
    """The three files of one slide in a run folder."""

    h5: Path
    thumb: Path
    state: Path

    @classmethod
    def of(cls, run_dir: Path, name: str, trident_names: bool = False) -> "SlideOutputs":
        """The outputs of slide ``name`` in ``run_dir``."""
        return cls(run_dir / "patches" / h5format.tile_set_name(name, trident_names),
                   run_dir / "thumbnails" / f"{name}.jpg", run_dir / "state" / f"{name}.json")

    def remove_leftovers(self) -> list[Path]:
        """Delete temporary files a killed run left for these outputs; returns them."""
        stale = [p for path in (self.h5, self.thumb, self.state) for p in stale_temporaries(path)]
        for p in stale:
            p.unlink(missing_ok=True)
        return stale


def _describe(key: str, value, options: tuple[str, ...]) -> str:
    if key not in options:
        return f"{key.replace('_', ' ')} {value}"
    flag = key.replace("_", "-")
    if isinstance(value, bool):
        return f"--{flag}" if value else f"--no-{flag}"
    return f"--{flag} {value}"


def settings_conflict(state: dict | None, settings: dict, options: tuple[str, ...],
                      given_mpp: float | None, force_mpp: bool) -> str | None:
    """Why a finished slide may not be redone with ``settings`` (one phrase), or None.

    ``settings`` maps option names (``options``, shown as flags) and other keys to values;
    ``given_mpp``/``force_mpp`` is the level-0 mpp this run supplies for the slide.
    """
    if not state or state.get("status") not in FINISHED:
        return None
    old = state.get("settings") or {}
    if old.get("schema_version") != settings.get("schema_version"):
        return (f"was made by rckd {state.get('rckd_version', 'before 0.2')} (tile-set schema "
                f"{old.get('schema_version')}), this run writes schema {settings.get('schema_version')}")
    for key, value in settings.items():
        if old.get(key) != value:
            was, now = _describe(key, old.get(key), options), _describe(key, value, options)
            return f"was made with {was}, this run has {now}"
    used, source = state.get("level0_mpp"), state.get("mpp_source")
    if source == "file" and force_mpp and given_mpp != used:
        return f"was made with the file's level-0 mpp {used}, this run forces --mpp {given_mpp}"
    if source == "given" and given_mpp != used:
        return f"was made with --mpp {used}, this run has {'--mpp ' + str(given_mpp) if given_mpp else 'none'}"
    return None


def verified_state(outputs: SlideOutputs, fingerprint: str, patch_size: int, save_images: bool) -> dict | None:
    """The state of a finished slide whose files agree with it, else None (redo the slide)."""
    state = read_state(outputs.state)
    if not state or state.get("status") not in FINISHED or state.get("fingerprint") != fingerprint:
        return None
    if state["status"] == "no_tissue":
        return None if outputs.h5.exists() else state
    try:
        info = h5format.read_tile_set(outputs.h5)
    except (ValueError, OSError):
        return None
    ok = (len(info) == state.get("n_tiles") and info.attrs.get("slide_fingerprint") == fingerprint
          and info.patch_size == patch_size and info.has_images == save_images
          and len(np.unique(info.coords, axis=0)) == len(info) and outputs.thumb.exists())
    return state if ok else None
