"""The engine under torchrun (2 CPU processes, gloo) equals one process with the doubled batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rckd.engine import latest_checkpoint, load_checkpoint, read_metrics

SCRIPT = Path(__file__).parent / "ddp_toy.py"
sys.path.insert(0, str(SCRIPT.parent))
import ddp_toy  # noqa: E402


def test_two_processes_equal_one_with_double_batch(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(SCRIPT), str(tmp_path / "ddp"), "8"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp_toy.main(str(tmp_path / "single"), 16)  # the same entry point, one process, doubled batch
    single = [r["train/loss"] for r in read_metrics(tmp_path / "single")]
    ddp = [r["train/loss"] for r in read_metrics(tmp_path / "ddp")]
    assert len(ddp) == 6 and single[-1] < 0.7 * single[0]
    assert ddp == pytest.approx(single, rel=1e-4)  # no BatchNorm here: equal up to float rounding
    a, meta, resume = load_checkpoint(latest_checkpoint(tmp_path / "ddp"))
    b, _, _ = load_checkpoint(latest_checkpoint(tmp_path / "single"))
    assert all(torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6) for k in a)
    assert meta["config"]["world_size"] == 2 and len(resume["rng"]) == 2  # every rank's RNG saved
    # only rank 0 wrote: one metrics file, one set of checkpoints
    assert sorted(p.name for p in (tmp_path / "ddp" / "checkpoints").glob("step_*")) == \
        ["step_00000003", "step_00000006"]
