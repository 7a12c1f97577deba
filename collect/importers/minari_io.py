"""Import a Minari dataset (0.5.x, Arrow or HDF5 storage) whose observations are RGB frames.

Frames come from an image observation space `Box(0, 255, (H, W, 3), uint8)`, or from the
`image`/`pixels`/`pov`/`rgb` entry of a `Dict` observation space. Minari episodes have one more
observation than actions; row `t` gets observation `t`, action `t` (none on the last row) and
the reward/termination of the step that led to it. Per-step `annotations` are read back from the
episode metadata where a BYOG export put them (`collect.export minari`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from collect.importers.common import ImporterError, require_minari

IMAGE_KEYS = ("image", "pixels", "pov", "rgb")


def open_minari(src: str | Path) -> Any:
    """Opens a local Minari dataset from its `data/` directory, its root, or its id (no download)."""
    minari = require_minari()
    from minari.dataset.minari_storage import METADATA_FILE_NAME

    path = Path(src)
    for cand in (path, path / "data"):
        if (cand / METADATA_FILE_NAME).is_file():
            try:
                return minari.MinariDataset(cand)
            except Exception as exc:  # noqa: BLE001 - minari raises many types
                raise ImporterError(f"Cannot read the Minari dataset at {cand}: {exc}") from None
    try:
        return minari.load_dataset(str(src), download=False)
    except Exception as exc:  # noqa: BLE001
        raise ImporterError(
            f"{str(src)!r} is neither a Minari dataset directory (with data/{METADATA_FILE_NAME}) nor"
            f" a locally installed Minari dataset id ({exc})."
        ) from None


def _frame_getter(space: gym.Space) -> Any:
    def is_image(s: gym.Space) -> bool:
        return (isinstance(s, gym.spaces.Box) and s.dtype == np.uint8 and len(s.shape) == 3
                and s.shape[-1] == 3)

    if is_image(space):
        return lambda obs: np.asarray(obs)
    if isinstance(space, gym.spaces.Dict):
        for key in IMAGE_KEYS:
            if key in space.spaces and is_image(space.spaces[key]):
                return lambda obs, key=key: np.asarray(obs[key])
    raise ImporterError(
        f"The Minari dataset's observation space {space} holds no RGB frames; BYOG imports"
        f" Box(0, 255, (H, W, 3), uint8) observations or a Dict with one of {IMAGE_KEYS}."
    )


def convert_episode(episode: Any, frames_of: Any, metadata: dict[str, Any]) -> dict[str, Any]:
    """One Minari `EpisodeData` as per-row arrays for `DatasetWriter.write_episode`."""
    frames = np.ascontiguousarray(frames_of(episode.observations), dtype=np.uint8)
    n = len(frames)
    n_act = len(episode.rewards)

    def shifted(values: Any, dtype: Any) -> np.ndarray:
        out = np.zeros(n, dtype)
        out[1:n_act + 1] = np.asarray(values, dtype)[: n - 1]
        return out

    notes = metadata.get("annotations")
    if notes is not None and len(notes) != n:
        raise ImporterError(
            f"Minari episode {episode.id} stores {len(notes)} annotation lists for {n} observations;"
            " the export is inconsistent, re-export it."
        )
    return {
        "frames": frames, "actions": episode.actions,
        "rewards": shifted(episode.rewards, np.float32),
        "terminated": shifted(episode.terminations, bool),
        "truncated": shifted(episode.truncations, bool),
        "annotations": notes, "seed": metadata.get("seed"),
    }


def dataset_metadata(ds: Any) -> dict[str, Any]:
    return json.loads(json.dumps(ds.storage.metadata, default=str))
