"""torchrun / DDP helpers: process group set-up, exact test sharding (no padded duplicates), gathering."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_distributed(device: torch.device) -> tuple[int, int]:
    """Join the process group torchrun describes (gloo on CPU, nccl on CUDA); (rank, world). (0, 1) alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return dist.get_rank(), dist.get_world_size()


def is_main_process() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def shard_indices(length: int, rank: int, world: int) -> list[int]:
    """Every index exactly once across ranks: rank r takes r, r+world, ... (unlike DistributedSampler, no
    padding duplicates that would bias test accuracy)."""
    return list(range(rank, length, world))


def gather_ordered(values: torch.Tensor, indices: list[int], length: int) -> torch.Tensor:
    """Collect every rank's rows (one per index) and return them in dataset order on every rank."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return values
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, (indices, values.cpu()))
    out = torch.empty((length, *values.shape[1:]), dtype=values.dtype)
    for idx, rows in parts:
        out[torch.as_tensor(idx, dtype=torch.long)] = rows
    return out.to(values.device)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
