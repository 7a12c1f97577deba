"""Where fitted encoders (VQ-VAE, k-means units) get their training clips from.

Every source becomes an endless or finite stream of clip batches, dicts with
``frames: uint8 [B, T, H, W, 3]``, ``valid: bool [B, T]`` and, when the source has them,
``embedding: float32 [B, T, D]`` and ``prev_frame: uint8 [B, H, W, 3]`` (the frame before each
window, read by frame-delta options). Accepted sources:

* a dataset directory (``str``/``Path``): read with ``collect.dataset.WindowDataset``;
* a ``torch.utils.data.Dataset`` of window dicts (a ``WindowDataset``);
* any iterable (e.g. a ``DataLoader``) of such dicts, of uint8 clip tensors ``[B, T, H, W, 3]``
  or of uint8 frame tensors/arrays ``[N, H, W, 3]`` (one clip of N frames);
* a single uint8 tensor/array ``[N, H, W, 3]`` or ``[B, T, H, W, 3]``.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.obs.base import ObsEncoderError

Clip = dict[str, torch.Tensor]


def iter_clip_batches(
    source: Any,
    *,
    batch_size: int = 16,
    window: int = 16,
    columns: tuple[str, ...] = (),
    shuffle: bool = False,
    seed: int = 0,
) -> Iterator[Clip]:
    """One pass over ``source`` as clip batches (see the module docstring for the forms).

    Args:
        source: Dataset dir, window dataset, iterable of batches, or a frame array.
        batch_size: Windows per batch when ``source`` is a dataset (dir or map-style).
        window: Frames per window when ``source`` is a dataset directory.
        columns: Extra float columns to read (``("embedding",)``) from a dataset.
        shuffle: Visit a map-style dataset's windows in a random order (seeded).
        seed: Seed of that order.
    """
    if isinstance(source, (str, Path)):
        source = _open_windows(Path(source), window=window, columns=columns)
    if isinstance(source, (torch.Tensor, np.ndarray)):
        yield _as_clip(source)
        return
    if _is_map_style(source):
        n = len(source)  # type: ignore[arg-type]
        if n == 0:
            raise ObsEncoderError("The window dataset is empty; collect some episodes first.")
        order = (torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
                 if shuffle else list(range(n)))
        for i in range(0, n, batch_size):
            yield _stack_items([source[j] for j in order[i:i + batch_size]])
        return
    if isinstance(source, Iterable):
        for item in source:
            yield _as_clip(item)
        return
    raise ObsEncoderError(
        f"Cannot read training frames from a {type(source).__name__}; pass a dataset directory, "
        "a WindowDataset, a DataLoader of window batches, or a uint8 frame array [N, H, W, 3]."
    )


def _is_map_style(source: Any) -> bool:
    """A map-style dataset of window items: ``torch.utils.data.Dataset`` or anything with
    ``__getitem__`` and ``__len__`` that is not a plain sequence or mapping (``WindowDataset``
    subclasses nothing, so an ``isinstance`` check alone misses it)."""
    if isinstance(source, torch.utils.data.Dataset):
        return hasattr(source, "__getitem__") and hasattr(source, "__len__")
    return (hasattr(source, "__getitem__") and hasattr(source, "__len__")
            and not isinstance(source, (Sequence, Mapping, torch.Tensor, np.ndarray)))


def cycle_clip_batches(source: Any, **kwargs: Any) -> Iterator[Clip]:
    """Repeat :func:`iter_clip_batches` forever (reshuffling each pass when asked)."""
    epoch = 0
    seed = kwargs.pop("seed", 0)
    while True:
        empty = True
        for clip in iter_clip_batches(source, seed=seed + epoch, **kwargs):
            empty = False
            yield clip
        if empty:
            raise ObsEncoderError("The frame source yielded no batches; it is empty.")
        if isinstance(source, Iterator):
            raise ObsEncoderError(
                "The frame source is a one-shot iterator and ran out before fitting finished; "
                "pass a re-iterable source (a dataset, a DataLoader or a list) or fewer steps."
            )
        epoch += 1


def valid_frames(clip: Clip) -> torch.Tensor:
    """The clip batch's valid frames, flattened: uint8 [N, H, W, 3]."""
    frames, valid = clip["frames"], clip["valid"]
    return frames[valid]


def _open_windows(path: Path, *, window: int, columns: tuple[str, ...]) -> Any:
    if not path.exists():
        raise ObsEncoderError(f"Dataset directory {path} does not exist; collect one first.")
    from collect.dataset import WindowDataset

    return WindowDataset(path, window=window, stride=window, columns=columns)


def _as_clip(item: Any) -> Clip:
    if isinstance(item, Mapping):
        if "frames" not in item:
            raise ObsEncoderError(
                f"A batch dict without 'frames' (keys: {sorted(item)}); pass window batches "
                "from collect.dataset (collate_windows)."
            )
        frames = torch.as_tensor(item["frames"])
        if frames.ndim == 4:  # a single window item [T, H, W, 3]
            return _stack_items([item])
        clip: Clip = {"frames": _check_frames(frames, 5)}
        B, T = frames.shape[:2]
        valid = item.get("valid")
        clip["valid"] = (torch.ones(B, T, dtype=torch.bool) if valid is None
                         else torch.as_tensor(valid, dtype=torch.bool))
        if item.get("embedding") is not None:
            clip["embedding"] = torch.as_tensor(item["embedding"], dtype=torch.float32)
        if item.get("prev_frame") is not None:
            clip["prev_frame"] = _check_frames(torch.as_tensor(item["prev_frame"]), 4)
        return clip
    frames = torch.as_tensor(item)
    if frames.ndim == 4:
        frames = frames[None]  # one clip of N frames
    frames = _check_frames(frames, 5)
    return {"frames": frames, "valid": torch.ones(frames.shape[:2], dtype=torch.bool)}


def _stack_items(items: list[Mapping[str, Any]]) -> Clip:
    frames = _check_frames(torch.stack([torch.as_tensor(it["frames"]) for it in items]), 5)
    B, T = frames.shape[:2]
    clip: Clip = {"frames": frames}
    if all(it.get("valid") is not None for it in items):
        clip["valid"] = torch.stack([torch.as_tensor(it["valid"], dtype=torch.bool) for it in items])
    else:
        clip["valid"] = torch.ones(B, T, dtype=torch.bool)
    if all(it.get("embedding") is not None for it in items):
        clip["embedding"] = torch.stack(
            [torch.as_tensor(it["embedding"], dtype=torch.float32) for it in items])
    if all(it.get("prev_frame") is not None for it in items):  # the frame before each window
        clip["prev_frame"] = _check_frames(
            torch.stack([torch.as_tensor(it["prev_frame"]) for it in items]), 4)
    return clip


def _check_frames(frames: torch.Tensor, ndim: int) -> torch.Tensor:
    if frames.dtype != torch.uint8 or frames.ndim != ndim or frames.shape[-1] != 3:
        raise ObsEncoderError(
            f"Expected uint8 RGB frames with {ndim} dims ending in 3, got {frames.dtype} "
            f"{tuple(frames.shape)}; frames must be raw uint8 [.., H, W, 3] as the dataset stores them."
        )
    return frames
