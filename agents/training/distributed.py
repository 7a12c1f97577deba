"""Multi-process data-parallel training with ``torch.distributed`` directly.

The trainer reads the launcher's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``), which both ``torchrun`` and ``accelerate launch`` set, so one
code path serves both. The agent's training entry point is ``training_step`` rather than
``forward``, which ``DistributedDataParallel``'s hooks do not see; instead the initial weights
are broadcast from rank 0 and gradients are averaged with one flat all-reduce after
``backward()`` — DDP's semantics (identical weights on every rank after every step) without
its forward wrapper. Backend: gloo on CPU, NCCL on CUDA.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        """Rank 0 writes logs, checkpoints and the summary."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """More than one process."""
        return self.world > 1


def check_device(device: str) -> None:
    """A device this torch build can use, else one clear error naming the fix.

    Raises:
        TrainError: an unknown device string, or CUDA/MPS asked of a build or machine without it.
    """
    from agents.training.config import TrainError

    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        raise TrainError(f"--device {device!r} is not a torch device; pass cpu or cuda "
                         "(cuda:N for one GPU).") from None
    if kind == "cuda" and not torch.cuda.is_available():
        why = ("this torch build has no CUDA support" if torch.version.cuda is None
               else "no GPU is visible")
        raise TrainError(f"--device {device} asked for a GPU but {why} (torch "
                         f"{torch.__version__}); pass --device cpu, or install a CUDA build of "
                         "torch on a machine with a GPU.")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise TrainError(f"--device {device} asked for Apple's MPS, which this machine lacks; "
                         "pass --device cpu.")


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (a torchrun rank whose launcher
    was kill -9'd would otherwise train on, orphaned); a no-op elsewhere."""
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # the parent died before prctl: nobody would signal us
        os.kill(os.getpid(), signal.SIGTERM)


def init_distributed(device: str = "cpu") -> DistInfo:
    """Join the process group when launched by torchrun/accelerate (``WORLD_SIZE`` > 1)."""
    check_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device.startswith("cuda") and torch.cuda.is_available()
    if cuda and world > 1:
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if world > 1 and not dist.is_initialized():
        die_with_parent()  # a rank never outlives its launcher
        dist.init_process_group("nccl" if cuda else "gloo")
    return DistInfo(rank=rank, world=world, local_rank=local, device=device)


def broadcast_module(module: nn.Module, info: DistInfo) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if not info.active:
        return
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src=0)


def average_gradients(params: list[nn.Parameter], info: DistInfo) -> None:
    """Average the gradients of ``params`` over ranks (one flat all-reduce; missing ones = 0)."""
    if not info.active:
        return
    grads = []
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        grads.append(p.grad)
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= info.world
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset:offset + n].view_as(g))
        offset += n


def mean_over_ranks(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Average some scalars over ranks (every rank must pass the same keys)."""
    if not info.active or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(v) / info.world for k, v in zip(keys, t.tolist())}


def weight_hashes(module: nn.Module, info: DistInfo) -> list[str]:
    """A digest of ``module``'s parameters and buffers on every rank (rank order)."""
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    mine = h.hexdigest()[:16]
    if not info.active:
        return [mine]
    out: list[str] = [""] * info.world
    dist.all_gather_object(out, mine)
    return out


def barrier(info: DistInfo) -> None:
    """Wait for every rank."""
    if info.active:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    """Leave the process group."""
    if info.active and dist.is_initialized():
        dist.destroy_process_group()
