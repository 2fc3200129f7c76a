"""Worker processes that fill shared memory with encoded chunks while this process writes them.

``--workers N`` (N >= 2, with ``--save-images``) forks N workers once per run, on the first
slide large enough to pay for it. Each worker owns a few slots of one shared-memory buffer and
talks to this process over its own pipe. It gets :class:`~rckd.data.wsi.extract.ExtractJob`
units one at a time (the next one when it reports the last done, so work balances itself) and,
chunk by chunk, reads the tiles' pixels into a free slot of its own (decoded straight into place
where the slide allows), encodes the chunk there and reports ``(chunk index, slot, bytes, filter
mask, failures)``. This process hands the slot to the h5 writer (``write_direct_chunk``: one
copy, into the file) and sends it back. Pixels never go through a pipe or pickle, and a worker
that dies is noticed at once (its process sentinel), not after a timeout.
"""

from __future__ import annotations

import collections
import gc
import logging
import mmap
import multiprocessing
import traceback
from multiprocessing.connection import wait
from typing import Iterator

import numpy as np

from rckd.data.wsi.extract import ExtractJob, fill_chunk, slide_handle
from rckd.data.wsi.h5format import encode_chunk

__all__ = ["ExtractPool", "MIN_PARALLEL_TILES"]

log = logging.getLogger(__name__)

MIN_PARALLEL_TILES = 256  # smaller slides are done in this process: starting workers costs more
SLOTS_PER_WORKER = 4


class ExtractPool:
    """A fixed set of worker processes, each with its pipe and its slots of shared memory.

    Args:
        workers: worker processes.
        chunk_shape: (chunk_tiles, P, P, 3) of every chunk of this run.
    """

    def __init__(self, workers: int, chunk_shape: tuple[int, int, int, int]):
        self.workers = int(workers)
        self.chunk_shape = tuple(int(v) for v in chunk_shape)
        self._slot_bytes = int(np.prod(self.chunk_shape))
        self._procs: list = []
        self._conns: list = []

    def _start(self) -> None:
        ctx = multiprocessing.get_context("fork")
        self._mem = mmap.mmap(-1, self.workers * SLOTS_PER_WORKER * self._slot_bytes)  # shared with forks
        gc.freeze()  # children's GC passes then leave inherited objects alone (no copy-on-write)
        for w in range(self.workers):
            mine, theirs = ctx.Pipe()
            slots = range(w * SLOTS_PER_WORKER, (w + 1) * SLOTS_PER_WORKER)
            proc = ctx.Process(target=_worker, args=(theirs, [mine, *self._conns], self._mem, self.chunk_shape,
                                                     slots), daemon=True)
            proc.start()
            theirs.close()
            self._procs.append(proc)
            self._conns.append(mine)

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
        pending, in_flight = collections.deque(jobs), 0
        for conn in self._conns[:len(pending)]:
            conn.send(("job", pending.popleft()))
            in_flight += 1
        procs = {p.sentinel: p for p in self._procs} | dict(zip(self._conns, self._procs))
        finished = False
        try:
            while in_flight:  # every job's "done" is read, so none is left for the next call
                for ready in wait(list(procs)):
                    kind, *body = _receive(ready, procs[ready])
                    if kind == "error":
                        raise RuntimeError(body[0])
                    if kind == "done":
                        in_flight -= 1
                        if pending:
                            ready.send(("job", pending.popleft()))
                            in_flight += 1
                        continue
                    index, slot, nbytes, mask, failures = body
                    yield index, self._slot(slot)[:nbytes], mask, failures
                    ready.send(("free", slot))
            finished = True
        finally:
            if not finished:
                self.close()

    def close(self) -> None:
        """Stop the workers (if started) and free the shared memory."""
        if not self._procs:
            return
        for proc in self._procs:
            proc.terminate()
        for proc, conn in zip(self._procs, self._conns):
            proc.join()
            conn.close()
        self._procs, self._conns = [], []
        try:
            self._mem.close()
        except BufferError:  # a consumer still holds a view of a slot: freed with the last one
            pass
        gc.unfreeze()

    def __enter__(self) -> "ExtractPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _receive(ready, proc) -> tuple:
    """The next message on a worker's pipe; RuntimeError if the worker has died instead."""
    try:
        if isinstance(ready, int):  # the process sentinel is ready: the worker ended
            raise EOFError
        return ready.recv()
    except (EOFError, OSError):
        proc.join(5)
        raise RuntimeError(f"a tiling worker process died (exit code {proc.exitcode})") from None


def _worker(conn, writer_ends: list, mem: mmap.mmap, chunk_shape, slots: range) -> None:
    """Worker process: serve jobs until the writer goes away (its end of the pipe closes).

    ``writer_ends`` are the writer's ends of the pipes, inherited through fork: closed here, so
    that when the writer dies, even killed, every worker reads end-of-file and exits.
    """
    for end in writer_ends:
        end.close()
    try:
        _serve(conn, np.frombuffer(mem, np.uint8).reshape(-1, *chunk_shape), list(slots))
    except (EOFError, BrokenPipeError):  # the writer ended (finished, failed or killed): so do we
        pass


def _serve(conn, view: np.ndarray, free: list[int]) -> None:
    """Worker loop: a job in; each chunk read into a free slot of its own, encoded there, reported."""
    while True:
        kind, body = conn.recv()
        if kind == "free":
            free.append(body)
            continue
        job = body
        try:
            reader = slide_handle(job)
            for n in range(job.n_chunks):
                while not free:  # the writer has all our slots: wait for one back
                    free.append(conn.recv()[1])
                slot = free.pop()
                failures = fill_chunk(reader, job, n, view[slot])
                data, mask = encode_chunk(view[slot], job.compression)
                conn.send(("chunk", job.first_chunk + n, slot, _store(view[slot], data), mask, failures))
            conn.send(("done",))
        except (EOFError, BrokenPipeError):
            raise
        except Exception as exc:  # noqa: BLE001 - reported to the writer, which raises it
            log.debug("tiling worker failed:\n%s", traceback.format_exc())
            conn.send(("error", f"{job.slide_path}: {type(exc).__name__}: {exc}"))


def _store(slot: np.ndarray, data) -> int:
    """Put encoded ``data`` at the start of ``slot`` (nothing to do if it is the slot); its size."""
    if isinstance(data, np.ndarray) and np.may_share_memory(data, slot):
        return data.nbytes
    raw = np.frombuffer(data, np.uint8)
    slot.reshape(-1)[:raw.size] = raw
    return raw.size
