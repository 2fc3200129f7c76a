"""Run logging on rank 0: TensorBoard scalars and image panels, plus ``metrics.jsonl``.

Scalars go to ``<out>/tb`` (TensorBoard) and, one JSON object per logged step, to
``<out>/metrics.jsonl`` (``{"step": 10, "train/loss": 0.41, "train/lr": 1e-3, ...}``). A resumed
run first drops what was logged after the checkpoint it resumes from, in both places, so the
curves stay single-valued; a fresh start (step 0) drops an earlier run's logs in the folder. On other ranks every method is a no-op.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from rckd.io import atomic_write_text

__all__ = ["RunLogger", "read_metrics"]

log = logging.getLogger(__name__)


def read_metrics(out: str | Path) -> list[dict[str, Any]]:
    """Rows of ``<out>/metrics.jsonl`` (empty when absent).

    A torn last line (a crash while it was written) is dropped with a warning; any other line that
    is not JSON raises ``ValueError`` naming the file and line.
    """
    path = Path(out) / "metrics.jsonl"
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if number == len(lines):
                log.warning("%s: dropping a torn last line (%s)", path, exc.msg)
                continue
            raise ValueError(f"{path}:{number}: not a JSON line ({exc.msg}); remove or fix that line") from None
    return rows


class RunLogger:
    """TensorBoard + JSON-lines logger that writes only when ``enabled`` (rank 0)."""

    def __init__(self, out: str | Path, enabled: bool = True, start_step: int = 0,
                 tensorboard: bool = True) -> None:
        self.out, self.enabled = Path(out), enabled
        self.writer = None
        if not enabled:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        self.path = self.out / "metrics.jsonl"
        rows = [r for r in read_metrics(self.out) if r.get("step", 0) <= start_step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in rows))
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            if not start_step:  # a fresh start: the curves of an earlier run in this folder go
                for old in (self.out / "tb").glob("events.out.tfevents.*"):
                    old.unlink()

            self.writer = SummaryWriter(str(self.out / "tb"), purge_step=start_step + 1 if start_step else None)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """Log ``values`` (already reduced over ranks) at ``step``."""
        if not self.enabled:
            return
        clean = {k: float(v) for k, v in values.items()}
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **clean}) + "\n")
        if self.writer is not None:
            for k, v in clean.items():
                self.writer.add_scalar(k, v, step)

    def images(self, step: int, panels: dict[str, torch.Tensor], nrow: int = 4) -> None:
        """Log image panels: each value is (B, C, H, W) in [0, 1] with C in {1, 3}."""
        if not self.enabled or self.writer is None:
            return
        from torchvision.utils import make_grid

        for name, imgs in panels.items():
            imgs = imgs.detach().float().cpu().clamp(0, 1)
            if imgs.shape[1] == 1:
                imgs = imgs.expand(-1, 3, -1, -1)
            self.writer.add_image(name, make_grid(imgs[:nrow * 2], nrow=nrow), step)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
