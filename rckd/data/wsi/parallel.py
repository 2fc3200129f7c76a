"""Worker processes that fill shared memory with encoded chunks while this process writes them.

``--workers N`` (N >= 2, with ``--save-images``) forks N workers once per run, on the first
slide large enough to pay for it. They take :class:`~rckd.data.wsi.extract.ExtractJob` units
from a queue and, chunk by chunk, take a free slot of a ring buffer in shared memory, read the
tiles' pixels into it (decoded straight into place where the slide allows), encode the chunk in
place and report ``(chunk index, slot, bytes, filter mask, failures)``. This process hands each
slot to the h5 writer (``write_direct_chunk``: one copy, into the file) and frees it. Pixels
never go through a pipe or pickle, and the writer never waits on a compressor.
"""

from __future__ import annotations

import gc
import logging
import mmap
import multiprocessing
import queue
import traceback
from typing import Iterator

import numpy as np

from rckd.data.wsi.extract import ExtractJob, fill_chunk, slide_handle
from rckd.data.wsi.h5format import encode_chunk

__all__ = ["ExtractPool", "MIN_PARALLEL_TILES"]

log = logging.getLogger(__name__)

MIN_PARALLEL_TILES = 256  # smaller slides are done in this process: starting workers costs more
SLOTS_PER_WORKER = 4
POLL_SECONDS = 1.0        # how often a waiting writer checks that its workers are alive


class ExtractPool:
    """A fixed set of worker processes and the shared ring of chunk slots they fill.

    Args:
        workers: worker processes.
        chunk_shape: (chunk_tiles, P, P, 3) of every chunk of this run.
    """

    def __init__(self, workers: int, chunk_shape: tuple[int, int, int, int]):
        self.workers = int(workers)
        self.chunk_shape = tuple(int(v) for v in chunk_shape)
        self._slot_bytes = int(np.prod(self.chunk_shape))
        self._procs: list = []

    def _start(self) -> None:
        ctx = multiprocessing.get_context("fork")
        n_slots = self.workers * SLOTS_PER_WORKER
        self._mem = mmap.mmap(-1, n_slots * self._slot_bytes)  # anonymous, shared with forked children
        self._tasks, self._done, self._free = ctx.Queue(), ctx.Queue(), ctx.Queue()
        for slot in range(n_slots):
            self._free.put(slot)
        gc.freeze()  # children's GC passes then leave inherited objects alone (no copy-on-write)
        for _ in range(self.workers):
            proc = ctx.Process(target=_worker, args=(self._tasks, self._done, self._free, self._mem,
                                                     self.chunk_shape), daemon=True)
            proc.start()
            self._procs.append(proc)

    def _slot(self, slot: int) -> memoryview:
        return memoryview(self._mem)[slot * self._slot_bytes:(slot + 1) * self._slot_bytes]

    def chunks(self, jobs: list[ExtractJob]) -> Iterator[tuple[int, memoryview, int, list]]:
        """Encoded chunks of ``jobs`` in completion order: ``(chunk index, data, filter mask, failures)``.

        ``data`` is a view of shared memory that is reused once the generator resumes.
        If the consumer stops early or a worker fails, the workers are stopped (a later call
        starts new ones).
        """
        if not self._procs:
            self._start()
        for job in jobs:
            self._tasks.put(job)
        remaining = sum(job.n_chunks for job in jobs)
        held, finished = None, False
        try:
            while remaining:
                if held is not None:
                    self._free.put(held)
                    held = None
                msg = self._next()
                if msg[0] == "error":
                    raise RuntimeError(msg[1])
                _, index, held, nbytes, mask, failures = msg
                remaining -= 1
                yield index, self._slot(held)[:nbytes], mask, failures
            finished = True
        finally:
            if held is not None and finished:
                self._free.put(held)
            if not finished:
                self.close()

    def _next(self) -> tuple:
        while True:
            try:
                return self._done.get(timeout=POLL_SECONDS)
            except queue.Empty:
                dead = [p for p in self._procs if not p.is_alive()]
                if dead:
                    raise RuntimeError(f"a tiling worker process died (exit code {dead[0].exitcode})") from None

    def close(self) -> None:
        """Stop the workers (if started) and free the shared memory."""
        if not self._procs:
            return
        for proc in self._procs:
            proc.terminate()
        for proc in self._procs:
            proc.join()
        for q in (self._tasks, self._done, self._free):
            q.close()
            q.cancel_join_thread()
        self._procs = []
        try:
            self._mem.close()
        except BufferError:  # a consumer still holds a view of a slot: freed with the last one
            pass
        gc.unfreeze()

    def __enter__(self) -> "ExtractPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _worker(tasks, done, free, mem: mmap.mmap, chunk_shape) -> None:
    """Worker loop: jobs in; each chunk read into a free slot, encoded there, reported out."""
    slots = np.frombuffer(mem, np.uint8).reshape(-1, *chunk_shape)
    while True:
        job = tasks.get()
        try:
            reader = slide_handle(job)
            for n in range(job.n_chunks):
                slot = free.get()
                failures = fill_chunk(reader, job, n, slots[slot])
                data, mask = encode_chunk(slots[slot], job.compression)
                done.put(("chunk", job.first_chunk + n, slot, _store(slots[slot], data), mask, failures))
        except Exception as exc:  # noqa: BLE001 - reported to the writer, which raises it
            log.debug("tiling worker failed:\n%s", traceback.format_exc())
            done.put(("error", f"{job.slide_path}: {type(exc).__name__}: {exc}"))


def _store(slot: np.ndarray, data) -> int:
    """Put encoded ``data`` at the start of ``slot`` (nothing to do if it is the slot); its size."""
    if isinstance(data, np.ndarray) and np.may_share_memory(data, slot):
        return data.nbytes
    raw = np.frombuffer(data, np.uint8)
    slot.reshape(-1)[:raw.size] = raw
    return raw.size
