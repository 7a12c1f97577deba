"""Importers of existing Minecraft/offline-RL data into the BYOG dataset format.

`python -m collect.importers {vpt,minerl,minari} SRC --out DIR`; in Python
`import_vpt(src, out)`, `import_minerl(src, out)`, `import_minari(src, out)`, each returning the
`meta/info.json` dict written. Every episode file is written atomically by `DatasetWriter`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from collect.importers.common import ImporterError
from collect.writer import DatasetWriter, action_layout, flatten_action, space_to_json

__all__ = ["ImporterError", "import_minari", "import_minerl", "import_vpt"]


def _annotator_version() -> str:
    from byog_env import ANNOTATOR_VERSION

    return ANNOTATOR_VERSION


def _flat(actions: list[Any], space: gym.spaces.Dict) -> np.ndarray:
    layout = action_layout(space)
    return np.stack([flatten_action(a, layout) for a in actions])


def import_vpt(
    src: str | Path, out: str | Path, size: tuple[int, int] = (64, 64), keep_null: bool = False,
) -> dict[str, Any]:
    """Imports VPT contractor recordings (`*.mp4` + `*.jsonl`) found under `src` into `out`.

    Args:
        src: A directory (searched recursively) or one recording's `.mp4`/`.jsonl`.
        out: New dataset directory.
        size: Output frame size (height, width), resized with INTER_LINEAR.
        keep_null: Keep null-action frames (VPT drops them).
    """
    from collect.importers import vpt

    pairs = vpt.find_recordings(Path(src))
    space = vpt.vpt_action_space()
    writer = DatasetWriter(out, resume_flag=None, info={
        "env": "minerl-vpt", "source": "vpt", "fps": vpt.FPS, "policy": "human (VPT contractors)",
        "action_space": space_to_json(space), "frame_shape": [size[0], size[1], 3],
        "annotator_version": _annotator_version(), "keep_null": keep_null,
    })
    for i, (video, jsonl) in enumerate(tqdm(pairs, desc="vpt", unit="recording")):
        ep = vpt.convert_recording(video, jsonl, size=size, keep_null=keep_null)
        writer.write_episode(
            i, ep["frames"], _flat(ep["actions"], space), annotations=ep["annotations"],
            name=video.stem, num_records=ep["num_records"],
            num_null_dropped=ep["num_null_dropped"], num_missing_frames=ep["num_missing_frames"],
        )
    return writer.finalize()


def import_minerl(src: str | Path, out: str | Path, size: tuple[int, int] = (64, 64)) -> dict[str, Any]:
    """Imports MineRL v0.4 trajectories (directories with `rendered.npz`) found under `src`."""
    from collect.importers import minerl

    trajs = minerl.find_trajectories(Path(src))
    writer: DatasetWriter | None = None
    enums: dict[str, list[str]] = {}
    space = None
    for i, traj in enumerate(tqdm(trajs, desc="minerl", unit="trajectory")):
        ep = minerl.convert_trajectory(traj, size=size, enums=enums)
        enums = ep["enums"]
        if space is None:
            space = ep["space"]
        elif set(space.spaces) != set(ep["space"].spaces):
            raise ImporterError(
                f"{traj} has actions {sorted(ep['space'].spaces)} but earlier trajectories have"
                f" {sorted(space.spaces)}; import trajectories of one MineRL environment at a time."
            )
        if writer is None:
            writer = DatasetWriter(out, resume_flag=None, info={
                "env": "minerl-" + str(ep["metadata"].get("environment", traj.parent.name)),
                "source": "minerl-v0.4", "fps": minerl.FPS, "policy": "human (MineRL dataset)",
                "action_space": space_to_json(space), "frame_shape": [size[0], size[1], 3],
                "annotator_version": _annotator_version(),
            })
        meta = ep["metadata"]
        writer.write_episode(
            i, ep["frames"], _flat(ep["actions"], space), rewards=ep["rewards"],
            terminated=_last(len(ep["frames"]), bool(meta.get("success", False))),
            annotations=ep["annotations"], success=meta.get("success"), name=traj.name,
        )
    assert writer is not None and space is not None
    for key, vocab in enums.items():
        space.spaces[key] = gym.spaces.Discrete(len(vocab))
    return writer.finalize(action_space=space_to_json(space), action_enums=enums)


def _last(n: int, value: bool) -> np.ndarray:
    out = np.zeros(n, bool)
    out[-1] = value
    return out


def import_minari(src: str | Path, out: str | Path) -> dict[str, Any]:
    """Imports a local Minari dataset with RGB-frame observations (see `minari_io`)."""
    from collect.importers import minari_io

    ds = minari_io.open_minari(src)
    frames_of = minari_io._frame_getter(ds.observation_space)
    action_space = ds.action_space
    discrete = isinstance(action_space, gym.spaces.Discrete)
    space_json = space_to_json(action_space)
    if not discrete and "layout" not in space_json:
        raise ImporterError(f"Minari action space {action_space} cannot be stored; BYOG stores Discrete, Box or flat Dict actions.")
    meta = minari_io.dataset_metadata(ds)
    writer = DatasetWriter(out, resume_flag=None, info={
        "env": meta.get("dataset_id", "minari"), "source": "minari", "fps": meta.get("fps", 10),
        "policy": meta.get("algorithm_name", "minari"), "action_space": space_json,
        "minari_dataset_id": meta.get("dataset_id"),
    })
    episode_meta = list(ds.storage.get_episode_metadata(ds.episode_indices))
    for pos, episode in enumerate(tqdm(ds.iterate_episodes(), total=len(ds), desc="minari", unit="episode")):
        ep = minari_io.convert_episode(episode, frames_of, episode_meta[pos])
        actions = ep["actions"]
        if not discrete:
            layout = action_layout(action_space)
            actions = (np.stack([flatten_action(a, layout) for a in _rows(actions)])
                       if len(episode.rewards) else np.zeros((0, sum(e["size"] for e in layout)), np.float32))
        writer.write_episode(
            int(episode.id), ep["frames"], actions, rewards=ep["rewards"], terminated=ep["terminated"],
            truncated=ep["truncated"], annotations=ep["annotations"], seed=ep["seed"],
        )
    return writer.finalize()


def _rows(actions: Any) -> list[Any]:
    """Splits Minari's batched actions (array or dict of arrays) into per-step actions."""
    if isinstance(actions, dict):
        n = len(next(iter(actions.values())))
        return [{k: v[i] for k, v in actions.items()} for i in range(n)]
    return list(np.asarray(actions))
