"""Import OpenAI VPT contractor recordings (`name.mp4` + `name.jsonl`) as a BYOG dataset.

The conversion follows openai/Video-Pre-Training (`run_inverse_dynamics_model.py`,
`data_loader.py`): keyboard keys map to MineRL buttons, the mouse buttons 0/1/2 to attack/use/
pickItem, camera = (dy, dx) * 360/2400 degrees, a stuck attack button at the start of a
recording is released until it is pressed again, hotbar changes become `hotbar.N` presses,
null actions (no mapped key, no mouse motion, no button) are dropped with their frames, and
frames are converted BGR->RGB and resized with INTER_LINEAR. Not reproduced: drawing the mouse
cursor into GUI frames (VPT composites a cursor image that is not part of the data).

Each kept frame's annotations come from `byog_env`'s `MineRLAnnotator` applied to the inventory
and statistics of the previous KEPT frame and this one, so events that happen during dropped
null-action frames are reported on the next kept frame instead of being lost.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from collect.importers.common import ImporterError, read_video_frames, resize_frame

KEYBOARD_BUTTON_MAPPING: dict[str, str] = {
    "key.keyboard.escape": "ESC", "key.keyboard.s": "back", "key.keyboard.q": "drop",
    "key.keyboard.w": "forward", "key.keyboard.e": "inventory", "key.keyboard.space": "jump",
    "key.keyboard.a": "left", "key.keyboard.d": "right", "key.keyboard.left.shift": "sneak",
    "key.keyboard.left.control": "sprint", "key.keyboard.f": "swapHands",
    **{f"key.keyboard.{i}": f"hotbar.{i}" for i in range(1, 10)},
}
MOUSE_BUTTONS: dict[int, str] = {0: "attack", 1: "use", 2: "pickItem"}
BUTTONS: tuple[str, ...] = tuple(
    sorted({*KEYBOARD_BUTTON_MAPPING.values(), *MOUSE_BUTTONS.values()})
)
#: Mouse counts to degrees (matches MineRL's Java sensitivity constant).
CAMERA_SCALER = 360.0 / 2400.0
FPS = 20


def vpt_action_space() -> gym.spaces.Dict:
    """MineRL 1.0 / VPT action space: 23 binary buttons plus `camera` (pitch, yaw) in degrees."""
    spaces: dict[str, gym.Space] = {b: gym.spaces.Discrete(2) for b in BUTTONS}
    spaces["camera"] = gym.spaces.Box(-180.0, 180.0, (2,), np.float32)
    return gym.spaces.Dict(spaces)


def json_action_to_env_action(step: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Converts one jsonl record to a MineRL action; returns `(action, is_null_action)`."""
    action: dict[str, Any] = dict.fromkeys(BUTTONS, 0)
    is_null = True
    for key in step.get("keyboard", {}).get("keys", []):
        if key in KEYBOARD_BUTTON_MAPPING:
            action[KEYBOARD_BUTTON_MAPPING[key]] = 1
            is_null = False
    mouse = step.get("mouse", {})
    dx, dy = float(mouse.get("dx", 0)), float(mouse.get("dy", 0))
    camera = np.array([dy * CAMERA_SCALER, dx * CAMERA_SCALER], np.float32)
    if dx != 0 or dy != 0:
        is_null = False
    else:
        camera[np.abs(camera) > 180] = 0
    action["camera"] = camera
    for button, name in MOUSE_BUTTONS.items():
        if button in mouse.get("buttons", []):
            action[name] = 1
            is_null = False
    return action, is_null


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Reads a VPT `.jsonl` file (one JSON object per line; blank lines ignored)."""
    records = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ImporterError(
                f"{path}:{lineno} is not valid JSON ({exc.msg}); VPT .jsonl files hold one action"
                " dict per line."
            ) from None
    return records


def vpt_inventory(entries: Sequence[dict[str, Any]] | None) -> dict[str, int]:
    """Sums VPT inventory slots `[{type, quantity}, ...]` into `{item: count}`."""
    out: dict[str, int] = {}
    for e in entries or []:
        item = str(e.get("type", "")).rsplit(":", 1)[-1]
        if item and item != "air":
            out[item] = out.get(item, 0) + int(e.get("quantity", 0))
    return out


def convert_recording(
    video: Path, jsonl: Path, size: tuple[int, int] = (64, 64), keep_null: bool = False,
) -> dict[str, Any]:
    """Converts one recording into per-frame arrays ready for `DatasetWriter.write_episode`.

    Returns:
        Dict with `frames uint8 [L, H, W, 3]`, `actions` (L MineRL action dicts),
        `annotations` (L sentence lists), and counts `num_records`, `num_null_dropped`,
        `num_missing_frames`.
    """
    from byog_env.annotators.minerl import MineRLAnnotator, info_from_inventory

    steps = read_jsonl(jsonl)
    annotate = MineRLAnnotator()
    frames, actions, annotations = [], [], []
    prev_info: dict[str, Any] | None = None
    attack_stuck, last_hotbar, dropped, missing = False, 0, 0, 0
    frame_iter = read_video_frames(video)
    for i, step in enumerate(steps):
        mouse = step.setdefault("mouse", {})
        if i == 0:
            attack_stuck = mouse.get("newButtons") == [0]
        elif attack_stuck and 0 in mouse.get("newButtons", []):
            attack_stuck = False
        if attack_stuck:
            mouse["buttons"] = [b for b in mouse.get("buttons", []) if b != 0]
        action, is_null = json_action_to_env_action(step)
        hotbar = int(step.get("hotbar", 0))
        if hotbar != last_hotbar:
            action[f"hotbar.{hotbar + 1}"] = 1
        last_hotbar = hotbar
        frame = next(frame_iter, None)  # read even for null actions, to stay in sync
        if frame is None:
            if i == 0:
                raise ImporterError(
                    f"{video} has no decodable frames; the video is corrupt or empty (re-download it).")
            missing = len(steps) - i
            break
        if is_null and not keep_null:
            dropped += 1
            continue
        info = info_from_inventory(vpt_inventory(step.get("inventory")), stats=step.get("stats") or {})
        annotations.append(annotate(prev_info, action, info))
        prev_info = info
        frames.append(resize_frame(frame, size))
        actions.append(action)
    if not frames:
        raise ImporterError(
            f"Recording {video.name} has no frames with a non-null action ({len(steps)} records,"
            f" {dropped} null); pass --keep-null to keep null-action frames."
        )
    return {
        "frames": np.stack(frames), "actions": actions, "annotations": annotations,
        "num_records": len(steps), "num_null_dropped": dropped, "num_missing_frames": missing,
    }


def find_recordings(src: Path) -> list[tuple[Path, Path]]:
    """Pairs `name.mp4` with `name.jsonl` under `src` (a directory, or one of the two files)."""
    src = Path(src)
    if src.is_file():
        videos = [src.with_suffix(".mp4")]
    elif src.is_dir():
        videos = sorted(src.rglob("*.mp4"))
    else:
        raise ImporterError(f"VPT source {str(src)!r} does not exist; pass a directory of .mp4/.jsonl pairs.")
    pairs = []
    for v in videos:
        j = v.with_suffix(".jsonl")
        if not j.is_file():
            raise ImporterError(f"Recording {v} has no matching {j.name}; VPT data comes in .mp4 + .jsonl pairs.")
        pairs.append((v, j))
    if not pairs:
        raise ImporterError(f"No .mp4/.jsonl recordings found under {src}.")
    return pairs
