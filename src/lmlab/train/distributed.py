"""Data parallelism for the Trainer: process groups under ``torchrun``, gradient all-reduce.

Semantics are those of PyTorch's DistributedDataParallel (Li et al., 2020, "PyTorch
Distributed: Experiences on Accelerating Data Parallel Training"): every process holds
a full replica, parameters start identical (broadcast from rank 0), each process
computes gradients on its own shard of the global batch, and gradients are summed
across processes before every optimiser step, so all replicas take the same step.

The all-reduce is done here, once per optimiser step, on flat buckets of gradients
(the ``no_sync`` pattern DDP users write for gradient accumulation), rather than by
wrapping the model in ``DistributedDataParallel``. Two reasons: an objective may call
any method of the model (``model.loss(...)``, ``model.encoder(...)``), which a DDP
wrapper would hide; and the Trainer normalises gradients by the *global* number of
target tokens, which needs sums, not DDP's per-process mean. What it gives up is the
overlap of communication with the backward pass.

Launch (one machine, 2 processes; gloo on CPU, nccl on GPUs)::

    torchrun --standalone --nproc_per_node 2 -m lmlab train run.toml

Several machines (run on each; node_rank 0..N-1; checkpoints go to a shared folder)::

    torchrun --nnodes 2 --node_rank 0 --nproc_per_node 8 \\
             --rdzv_backend c10d --rdzv_endpoint HOST:29500 -m lmlab train run.toml
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import UsageError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise UsageError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not an integer") from None


def init_from_env(device: torch.device) -> DistInfo:
    """Join the process group ``torchrun`` describes in the environment (no-op for one process)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    world = env_world_size()
    if world <= 1:
        return DistInfo()
    for key in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if key not in os.environ:
            raise UsageError(f"WORLD_SIZE={world} but {key} is not set; launch with torchrun")
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def local_rank_from_env() -> int:
    try:
        return int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise UsageError(f"LOCAL_RANK={os.environ['LOCAL_RANK']!r} is not an integer") from None


def current() -> DistInfo:
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return DistInfo()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def broadcast_module(module: torch.nn.Module, device: torch.device | None = None) -> None:
    """Make every replica start from rank 0's parameters and buffers (``module`` is on its device)."""
    if not _active():
        return
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over processes in place (identity for one process)."""
    if _active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_min(tensor: torch.Tensor) -> torch.Tensor:
    """Minimum of ``tensor`` over processes, in place (used to agree that every process succeeded)."""
    if _active():
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return tensor


def all_reduce_max(tensor: torch.Tensor) -> torch.Tensor:
    """Maximum of ``tensor`` over processes, in place (used to agree that some process got a signal)."""
    if _active():
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def all_reduce_grads(params: list[torch.nn.Parameter], bucket_bytes: int = 25 * 2**20) -> None:
    """Sum the ``.grad`` of ``params`` over processes, in flat buckets of ~``bucket_bytes``.

    A parameter with no gradient on this process (unused this step) contributes zeros,
    so every process takes part in the same collectives.
    """
    if not _active():
        return
    for param in params:
        if param.grad is None:
            param.grad = torch.zeros_like(param)
    bucket: list[torch.Tensor] = []
    size = 0
    for param in params:
        bucket.append(param.grad)
        size += param.grad.numel() * param.grad.element_size()
        if size >= bucket_bytes:
            _reduce_bucket(bucket)
            bucket, size = [], 0
    if bucket:
        _reduce_bucket(bucket)


def _reduce_bucket(grads: list[torch.Tensor]) -> None:
    flat = torch.cat([g.reshape(-1) for g in grads])  # [sum of numel]
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def _comm_device() -> torch.device:
    """Where small control tensors must live for the active backend (nccl: the current GPU)."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    if _active():
        dist.barrier()


def broadcast_str(text: str) -> str:
    """Rank 0's ``text`` on every process (sent as bytes in a tensor; nothing is pickled)."""
    if not _active():
        return text
    device = _comm_device()
    data = torch.tensor(list(text.encode("utf-8")), dtype=torch.uint8, device=device)
    length = torch.tensor([data.numel()], dtype=torch.int64, device=device)
    dist.broadcast(length, src=0)
    buffer = torch.zeros(int(length.item()), dtype=torch.uint8, device=device)
    if dist.get_rank() == 0:
        buffer.copy_(data)
    dist.broadcast(buffer, src=0)
    return bytes(buffer.tolist()).decode("utf-8")


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
