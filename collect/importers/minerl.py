"""Import MineRL v0.4 dataset trajectories (`recording.mp4`, `rendered.npz`, `metadata.json`).

`rendered.npz` holds one array per `$`-joined key: `action$forward`, `action$camera`,
`action$place` (strings), `observation$inventory$log`, `observation$equipped_items$mainhand$type`,
`reward`, ... Observations have one more entry than actions (the state after the last action);
row `t` of the BYOG episode is state `t` with the action taken from it, and the reward of
action `t` is stored on row `t + 1` (the reward received on arriving there).

String-valued actions (`place`, `equip`, `craft`, ...) are stored as integer codes; the code
tables are saved in `meta/info.json["action_enums"]`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from collect.importers.common import ImporterError, read_video_frames, resize_frame

FPS = 20


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split("$")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def action_spec(arrays: dict[str, np.ndarray]) -> tuple[gym.spaces.Dict, dict[str, list[str]]]:
    """Action space and enum tables for the `action$...` arrays of a trajectory."""
    spaces: dict[str, gym.Space] = {}
    enums: dict[str, list[str]] = {}
    for key, arr in arrays.items():
        if arr.dtype.kind in "USO":
            vocab = sorted({str(v) for v in arr.tolist()})
            if "none" in vocab:
                vocab.remove("none")
                vocab.insert(0, "none")
            enums[key] = vocab
            spaces[key] = gym.spaces.Discrete(max(len(vocab), 1))
        elif arr.ndim > 1 or arr.dtype.kind == "f":
            bound = 180.0 if key == "camera" else np.inf
            spaces[key] = gym.spaces.Box(-bound, bound, arr.shape[1:], np.float32)
        else:
            spaces[key] = gym.spaces.Discrete(max(int(arr.max(initial=0)) + 1, 2))
    return gym.spaces.Dict(spaces), enums


def load_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise ImporterError(f"{path} is missing; a MineRL v0.4 trajectory needs rendered.npz.")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise ImporterError(f"{path} is not a readable .npz file ({exc}); re-download the trajectory.") from None


def convert_trajectory(
    traj: Path, size: tuple[int, int] = (64, 64), enums: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Converts one trajectory directory into per-frame arrays for `DatasetWriter.write_episode`.

    Args:
        traj: Directory with `recording.mp4`, `rendered.npz` and (optionally) `metadata.json`.
        size: Output frame size (height, width).
        enums: Enum tables to extend (shared across the trajectories of one dataset).

    Returns:
        Dict with `frames`, `actions` (dicts, `None` on the last row), `rewards`, `annotations`,
        `space` (the Dict action space), `enums`, `metadata`.
    """
    from byog_env.annotators.minerl import MineRLAnnotator, minerl_info

    data = load_npz(traj / "rendered.npz")
    act = {k[len("action$"):]: v for k, v in data.items() if k.startswith("action$")}
    obs = {k[len("observation$"):]: v for k, v in data.items() if k.startswith("observation$")}
    if not act:
        raise ImporterError(f"{traj / 'rendered.npz'} has no 'action$...' arrays; is it a MineRL v0.4 trajectory?")
    n_actions = len(next(iter(act.values())))
    n_states = max((len(v) for v in obs.values()), default=n_actions + 1)
    frames = [resize_frame(f, size) for f in read_video_frames(traj / "recording.mp4")]
    n = min(len(frames), n_states)
    if n == 0:
        raise ImporterError(f"{traj / 'recording.mp4'} has no frames.")
    enums = {k: list(v) for k, v in (enums or {}).items()}
    space, found = action_spec(act)
    for key, vocab in found.items():
        table = enums.setdefault(key, ["none"] if "none" in vocab else [])
        table += [v for v in vocab if v not in table]
        space.spaces[key] = gym.spaces.Discrete(len(table))
    actions: list[Any] = []
    for t in range(min(n, n_actions)):
        a: dict[str, Any] = {}
        for key, arr in act.items():
            a[key] = enums[key].index(str(arr[t])) if key in enums else np.asarray(arr[t], np.float32)
        actions.append(a)
    reward = np.asarray(data.get("reward", np.zeros(n_actions)), np.float32)
    rewards = np.zeros(n, np.float32)
    k = min(n - 1, len(reward))
    rewards[1:k + 1] = reward[:k]
    annotate = MineRLAnnotator()
    annotations, prev = [], None
    for t in range(n):
        state = _nest({key: v[t] for key, v in obs.items() if t < len(v)})
        info = minerl_info(state)
        annotations.append(annotate(prev, actions[t - 1] if t else None, info))
        prev = info
    meta_path = traj / "metadata.json"
    metadata = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    return {
        "frames": np.stack(frames[:n]), "actions": actions, "rewards": rewards,
        "annotations": annotations, "space": space, "enums": enums, "metadata": metadata,
    }


def find_trajectories(src: Path) -> list[Path]:
    """Trajectory directories under `src` (those holding a `rendered.npz`)."""
    src = Path(src)
    if not src.exists():
        raise ImporterError(f"MineRL source {str(src)!r} does not exist; pass a trajectory directory or a folder of them.")
    found = sorted(p.parent for p in src.rglob("rendered.npz")) if src.is_dir() else []
    if not found:
        raise ImporterError(f"No MineRL trajectories (rendered.npz + recording.mp4) found under {src}.")
    return found
