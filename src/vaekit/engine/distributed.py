"""Data-parallel training across processes with PyTorch's DistributedDataParallel.

`torchrun --nproc_per_node N -m vaekit train ...` sets WORLD_SIZE/RANK; each process then trains
on its slice of every global batch (gloo on CPU, nccl on GPU), gradients are averaged by DDP,
and only rank 0 logs, validates and writes checkpoints.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from vaekit.errors import ConfigError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, x: torch.Tensor) -> torch.Tensor:
        """This process's contiguous slice of a global batch."""
        if self.size == 1:
            return x
        per_rank = len(x) // self.size
        return x[self.rank * per_rank:(self.rank + 1) * per_rank]

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.size > 1:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


def is_main_process() -> bool:
    """The process that writes once for all: the only one, or rank 0 of torchrun's (a RANK without
    WORLD_SIZE is no process group, as `setup` decides)."""
    return os.environ.get("WORLD_SIZE", "1") == "1" or os.environ.get("RANK") == "0"


def setup(batch_size: int, iwae_k: int) -> World:
    """Join the process group torchrun describes, or run alone."""
    size = os.environ.get("WORLD_SIZE", "1")
    if not size.isdigit() or int(size) < 1:
        raise ConfigError(f"WORLD_SIZE must be a positive number of processes (torchrun sets it), got {size!r}")
    size = int(size)
    if size == 1:
        return World()
    if not os.environ.get("RANK", "").isdigit() or not int(os.environ["RANK"]) < size:
        raise ConfigError(f"RANK must be a process number below WORLD_SIZE ({size}) (torchrun sets both), got "
                          f"{os.environ.get('RANK')!r}")
    if batch_size % size:
        raise ConfigError(f"train.batch_size ({batch_size}) must be divisible by the {size} processes")
    if iwae_k > 1:
        raise ConfigError("IWAE training (iwae_k > 1) runs in a single process; drop torchrun or set iwae_k=1")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return World(dist.get_rank(), dist.get_world_size())


def teardown(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()
