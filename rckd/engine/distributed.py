"""Distributed helpers that also work in one process.

``torchrun`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; :func:`init_distributed` reads them and
starts a process group (``nccl`` on CUDA, ``gloo`` on CPU). Without them everything here is a
no-op on a single process, so the training loop has one code path. Only rank 0 writes files
(:func:`is_main`).

:class:`StepBatchSampler` gives each rank its share of every *global* batch for a range of
steps: step ``k`` of a run uses the same samples whether the run is single-process with batch
``B * W`` or ``W`` processes with batch ``B``, and a resumed run picks up at the exact step.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from datetime import timedelta
from typing import Iterator

import torch
import torch.distributed as dist

from rckd.runtime import resolve_device

__all__ = ["DistInfo", "init_distributed", "cleanup", "is_dist", "get_rank", "get_world_size",
           "is_main", "barrier", "all_reduce_mean", "reduce_dict", "StepBatchSampler"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DistInfo:
    """Where this process stands: rank, world size, local rank and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def is_dist() -> bool:
    """True when a process group with more than one rank is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """True on rank 0 (and in a single process): the only rank that writes."""
    return get_rank() == 0


def init_distributed(device: str = "auto", timeout_s: int = 1800) -> DistInfo:
    """Start the process group from torchrun's environment (if any) and pick this rank's device.

    ``device='auto'`` is CUDA when available; with several ranks on CUDA each uses
    ``cuda:LOCAL_RANK``. Backend: ``nccl`` for CUDA, ``gloo`` otherwise. Safe to call twice.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
        log.info("process group %s: rank %d of %d on %s", backend, dist.get_rank(), world, dev)
    return DistInfo(get_rank(), get_world_size(), local_rank, dev)


def cleanup() -> None:
    """Destroy the process group if one is running."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op in one process)."""
    if is_dist():
        dist.barrier()


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over ranks (a new tensor; no gradient)."""
    x = x.detach().clone()
    if is_dist():
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        x /= dist.get_world_size()
    return x


def reduce_dict(values: dict[str, torch.Tensor | float]) -> dict[str, float]:
    """Mean over ranks of a dict of scalars, with one collective, as Python floats."""
    if not values:
        return {}
    keys = sorted(values)
    ref = next((v for v in values.values() if isinstance(v, torch.Tensor)), None)
    device = ref.device if ref is not None else torch.device("cpu")
    if is_dist() and dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    stacked = torch.stack([torch.as_tensor(values[k], dtype=torch.float32, device=device).detach()
                           .reshape(()) for k in keys])
    stacked = all_reduce_mean(stacked).cpu().tolist()
    return dict(zip(keys, stacked))


def draw_key(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for the draw of sample ``index`` in ``epoch`` of a run seeded ``seed``."""
    return hash((int(seed), int(epoch), int(index))) & (2 ** 63 - 1)  # int tuples hash stably


class StepBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Per-rank index batches for steps ``start .. total - 1`` of a run.

    Epoch ``e`` is a permutation of ``range(n)`` seeded by ``seed + e`` (identity when not
    ``shuffle``); global batch ``j`` of the epoch is ``perm[j*B*W : (j+1)*B*W]`` and rank ``r``
    takes every ``W``-th element from ``r``. The tail of each epoch that does not fill a global
    batch is dropped.

    With ``keyed`` each element is ``(index, key)``: ``key`` is a deterministic function of
    ``(seed, epoch, index)``, unique per draw, so that a dataset can seed its own randomness
    (random crops in DataLoader workers) from it and a resumed run draws exactly what an
    uninterrupted one would, whatever the number of workers.
    """

    def __init__(self, n: int, batch_size: int, total_steps: int, start_step: int = 0,
                 world_size: int = 1, rank: int = 0, seed: int = 0, shuffle: bool = True,
                 keyed: bool = False) -> None:
        global_batch = batch_size * world_size
        if n < global_batch:
            raise ValueError(f"the dataset has {n} samples, fewer than one global batch "
                             f"({batch_size} x {world_size} processes = {global_batch})")
        self.n, self.batch_size, self.world_size, self.rank = n, batch_size, world_size, rank
        self.total_steps, self.start_step, self.seed, self.shuffle = total_steps, start_step, seed, shuffle
        self.keyed = keyed
        self.steps_per_epoch = n // global_batch

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step)

    def _perm(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.n)
        g = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(self.n, generator=g)

    def __iter__(self) -> Iterator[list[int]]:
        gb = self.batch_size * self.world_size
        epoch, perm = -1, None
        for step in range(self.start_step, self.total_steps):
            e, j = divmod(step, self.steps_per_epoch)
            if e != epoch:
                epoch, perm = e, self._perm(e)
            chunk = perm[j * gb:(j + 1) * gb][self.rank::self.world_size].tolist()
            yield [(i, draw_key(self.seed, e, i)) for i in chunk] if self.keyed else chunk
