"""Several processes training one model (DistributedDataParallel): the process group, ranks, rank-0 writes.

torchrun (alone, or under srun on a cluster) starts one process per GPU with RANK, LOCAL_RANK,
WORLD_SIZE, MASTER_ADDR and MASTER_PORT in the environment; `setup` joins them into a process
group (NCCL on CUDA, gloo on the CPU). Without WORLD_SIZE > 1 nothing here does anything: one
process runs exactly as it always did. docs/distributed.md has the launch lines.

A global batch of data.batch_size images is cut into one share per rank (`share`); DDP
averages the gradients, so a step is the single-process step up to float summation order.
Only rank 0 writes artifacts; every rank waits at a barrier after a write (`rank_zero_writes`),
so no rank reads a file before it is complete.
"""

from __future__ import annotations

import atexit
import os
from contextlib import contextmanager
from typing import Iterable, Iterator

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from .config import Experiment
from .errors import UserError
from .log import console


def launched_world_size() -> int:
    """The number of processes torchrun started (1 when not started by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup(exp: Experiment, device: torch.device) -> torch.device:
    """Join torchrun's process group (once per process) and return this process's device:
    cuda:LOCAL_RANK on CUDA, `device` otherwise. A no-op returning `device` in a single process."""
    world = launched_world_size()
    if world <= 1:
        return device
    if exp.data.batch_size % world:
        raise UserError(f"{exp.path}: data.batch_size: {exp.data.batch_size} images per step do not split evenly "
                        f"over {world} processes (WORLD_SIZE); use a multiple of {world}")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        # init_method env:// reads MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE.
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(_close)
        console.quiet = dist.get_rank() != 0  # one copy of the progress and log lines; errors still print
    return device


def _close() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    """True in a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def barrier() -> None:
    """Wait for every rank (nothing in a single process)."""
    if active():
        dist.barrier()


@contextmanager
def rank_zero_writes() -> Iterator[bool]:
    """`with rank_zero_writes() as writing: if writing: ...`: True on rank 0 (and in a single
    process). Every rank then waits at a barrier, so what rank 0 wrote is complete (atomically
    renamed into place) before any rank goes on to read it."""
    yield rank() == 0
    barrier()


def share(count: int, rank: int, world: int) -> tuple[int, int]:
    """Rows [start, stop) of a `count`-row global batch that `rank` of `world` takes: equal
    shares, the first count % world ranks one row more (so rank 0 is empty only when count is 0)."""
    base, extra = divmod(count, world)
    start = rank * base + min(rank, extra)
    return start, start + base + int(rank < extra)


def wrap(model: nn.Module) -> nn.Module:
    """The model in DistributedDataParallel (gradients averaged over the ranks), or the model
    itself in a single process. Construction broadcasts rank 0's parameters and buffers."""
    if not active():
        return model
    device = next(model.parameters()).device
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


@torch.no_grad()
def broadcast_(tensors: Iterable[torch.Tensor]) -> None:
    """Overwrite each tensor in place with rank 0's copy (nothing in a single process)."""
    if not active():
        return
    for tensor in tensors:
        if tensor.dtype == torch.bool:  # collectives move numbers: masks travel as uint8
            carrier = tensor.to(torch.uint8)
            dist.broadcast(carrier, 0)
            tensor.copy_(carrier.bool())
        else:
            dist.broadcast(tensor, 0)


def all_sum_(*tensors: torch.Tensor) -> None:
    """Replace each tensor by its sum over the ranks, in place (nothing in a single process)."""
    if active():
        for tensor in tensors:
            dist.all_reduce(tensor)


def gather_rows(local: torch.Tensor, count: int) -> torch.Tensor:
    """The whole `count`-row global batch, put together from every rank's share in rank order.
    Shares differ by at most a row, so each travels padded to the widest and is cut back."""
    world = world_size()
    widest = -(-count // world)  # ceil(count / world) rows
    padded = local.new_zeros((widest, *local.shape[1:]))
    padded[: local.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    sizes = [stop - start for start, stop in (share(count, r, world) for r in range(world))]
    return torch.cat([part[:size] for part, size in zip(parts, sizes)])


def whole_batch(images: torch.Tensor, labels: torch.Tensor,
                count: int | None) -> tuple[torch.Tensor, torch.Tensor, slice]:
    """(images, labels) of the global batch this rank holds a share of, and the rows of its share;
    in a single process (`count` None) the batch itself and every row."""
    if count is None:
        return images, labels, slice(None)
    start, stop = share(count, rank(), world_size())
    return gather_rows(images, count), gather_rows(labels, count), slice(start, stop)
