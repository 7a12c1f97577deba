"""Where the studies' torch work runs: one check of a requested device, failing early with the
fix in one line (before hours of collection end in "Torch not compiled with CUDA enabled")."""
from __future__ import annotations

from experiments.errors import ExperimentError


def require_device(device: str, who: str) -> str:
    """``device`` when torch can run on it here, else an :class:`ExperimentError` naming the fix.

    Args:
        device: A torch device string (``cpu``, ``cuda``, ``cuda:1``, ``mps``).
        who: What asks for it, the subject of the message (``"Preset gpu"``, ``"This BC cell"``).
    """
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ExperimentError(f"{who} asks for device {device!r}, which is not a torch device; "
                              "pass cpu or cuda (cuda:N for one GPU).") from None
    present = {"cpu": lambda: True, "cuda": torch.cuda.is_available, "mps": torch.backends.mps.is_available}
    if not present.get(dev.type, lambda: True)():  # other kinds (meta, xla): torch says it itself
        raise ExperimentError(f"{who} runs on {device}, which this machine lacks; run it where a GPU is, "
                              "or pass --device cpu.")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ExperimentError(f"{who} runs on {device}, but this machine has {torch.cuda.device_count()} "
                              "CUDA device(s); pass cuda (the first) or an index below that.")
    return device


__all__ = ["require_device"]
