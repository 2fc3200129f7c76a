"""Worker processes over shared memory give exactly the chunks made in-process, and fail loudly."""

from __future__ import annotations

import numpy as np
import pytest

from rckd.data.wsi.extract import local_chunks, make_jobs
from rckd.data.wsi.grid import grid_coords, plan_geometry
from rckd.data.wsi.parallel import ExtractPool


def _jobs(path, compression, patch=64):
    geom = plan_geometry(0.5, 0.5, patch)
    coords = grid_coords(1536, 1024, geom)[:150]  # 150 tiles: 37 full chunks of 4 and a short one
    return make_jobs(str(path), None, geom, coords, chunk_tiles=4, compression=compression, workers=2)


def _collect(chunks) -> dict:
    return {index: (bytes(data), mask, failures) for index, data, mask, failures in chunks}


@pytest.mark.parametrize("compression", ["none", "lzf"])
def test_pool_chunks_equal_local_chunks(slides, compression):
    jobs = _jobs(slides["tissue"], compression)
    local = _collect(local_chunks(jobs))
    with ExtractPool(2, (4, 64, 64, 3)) as pool:
        first, again = _collect(pool.chunks(jobs)), _collect(pool.chunks(jobs))  # workers are reused
    assert sorted(local) == list(range(38)) and first == local and again == local
    if compression == "lzf":
        assert {mask for _, mask, _ in local.values()} == {0, 1}  # glass compressed, tissue raw
    short = np.frombuffer(local[37][0], np.uint8) if compression == "none" else None
    if short is not None:
        assert not short.reshape(4, 64, 64, 3)[2:].any()  # the short last chunk is zero-padded


def test_worker_error_names_the_slide_and_pool_recovers(slides, tmp_path):
    with ExtractPool(2, (4, 64, 64, 3)) as pool:
        with pytest.raises(RuntimeError, match="missing.tiff"):
            _collect(pool.chunks(_jobs(tmp_path / "missing.tiff", "none")))
        assert not pool._procs  # stopped after the failure
        good = _jobs(slides["tissue"], "none")
        assert _collect(pool.chunks(good)) == _collect(local_chunks(good))


def test_consumer_stopping_early_stops_the_workers(slides):
    with ExtractPool(2, (4, 64, 64, 3)) as pool:
        chunks = pool.chunks(_jobs(slides["tissue"], "none"))
        held = next(chunks)  # the consumer keeps a view of shared memory
        procs = list(pool._procs)
        chunks.close()
        assert not pool._procs and not any(p.is_alive() for p in procs)
        assert len(bytes(held[1])) == 4 * 64 * 64 * 3


def test_a_worker_that_dies_is_noticed_at_once(slides, monkeypatch):
    import os
    import time

    from rckd.data.wsi import parallel

    monkeypatch.setattr(parallel, "fill_chunk", lambda *a: os._exit(3))  # inherited by the forks
    with ExtractPool(2, (4, 64, 64, 3)) as pool:
        t0 = time.perf_counter()
        with pytest.raises(RuntimeError, match="worker process died.*exit code 3"):
            _collect(pool.chunks(_jobs(slides["tissue"], "none")))
        assert time.perf_counter() - t0 < 5 and not pool._procs


def test_workers_exit_when_the_writer_is_killed(slides):
    import os
    import signal
    import subprocess
    import sys
    import time

    script = f"""
import sys, time
from rckd.data.wsi.grid import grid_coords, plan_geometry
from rckd.data.wsi.extract import make_jobs
from rckd.data.wsi.parallel import ExtractPool
geom = plan_geometry(0.5, 0.5, 64)
jobs = make_jobs({str(slides["tissue"])!r}, None, geom, grid_coords(1536, 1024, geom), chunk_tiles=4,
                 compression="none", workers=2)
pool = ExtractPool(2, (4, 64, 64, 3))
chunks = pool.chunks(jobs)
next(chunks)  # workers started and busy; the writer now stalls
print(*[p.pid for p in pool._procs], flush=True)
time.sleep(60)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 2
    proc.send_signal(signal.SIGKILL)  # no clean-up code runs in the writer
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    left = [p for p in pids if _alive(p)]
    for pid in left:  # never leave orphans behind, even when failing
        os.kill(pid, signal.SIGKILL)
    assert not left


def _alive(pid: int) -> bool:
    import os
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie has exited; only its entry is left
        return f.read().split(") ")[1][0] != "Z"
