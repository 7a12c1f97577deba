"""Export a BYOG dataset: `python -m collect.export {minari,mp4,lerobot} DIR --out DEST`.

Each format is a registered config class with a `run()` (:mod:`collect.converters`); a plugin
format is named with `--plugin MODULE` before the subcommand.

- `minari`: a Minari 0.5 dataset (Arrow storage) with RAW uint8 frames. Minari JPEG-encodes image
  observations by default (lossy); we create the storage with `jpeg_encoding=False` through
  Minari's own storage API (`MinariStorage.new` + `update_episodes`), which needs neither jax
  (`minari[create]`) nor h5py. Per-step annotations (and intent) go into each episode's metadata,
  where `python -m collect.importers minari` reads them back. Minari episodes have one more
  observation than actions: the last row's action is dropped if the source has one (VPT imports).
  Vector (Dict/Box) actions are exported as their flat float32 vector in a `Box`.
- `mp4`: one H.264 preview per episode with the annotations drawn as subtitles.
- `lerobot`: a LeRobot v3.0 dataset (:mod:`collect.lerobot`; `--language` adds language_events).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import tyro
from tqdm import tqdm

from collect.converters import EXPORTERS, converter_cli
from collect.dataset import open_dataset
from collect.errors import ExportError, UsageError
from collect.importers.common import ImporterError, require_minari
from collect.lerobot import LeRobotExport


def _action_space(info: dict[str, Any]) -> gym.Space:
    space = info.get("action_space") or {}
    if space.get("type") == "Discrete":
        return gym.spaces.Discrete(int(space["n"]), start=int(space.get("start", 0)))
    layout = space.get("layout")
    if not layout:
        raise ExportError(f"Cannot export actions of space {space}; only Discrete and flat vector actions are supported.")
    return gym.spaces.Box(-np.inf, np.inf, (sum(e["size"] for e in layout),), np.float32)


def export_minari(src: str | Path, out: str | Path, dataset_id: str | None = None) -> Path:
    """Writes the dataset at `src` as a Minari dataset rooted at `out` (data in `out/data`).

    Returns:
        The Minari data directory (`minari.MinariDataset(path)` opens it).
    """
    try:
        minari = require_minari()
    except ImporterError as exc:
        raise ExportError(str(exc)) from None
    from minari.data_collector.episode_buffer import EpisodeBuffer
    from minari.dataset.minari_storage import MinariStorage

    ds = open_dataset(src)
    info = ds.info
    out = Path(out)
    if (out / "data").exists() and any((out / "data").iterdir()):
        raise ExportError(f"{out / 'data'} already exists and is not empty; choose another --out.")
    shape = tuple(info["frame_shape"])
    obs_space = gym.spaces.Box(0, 255, shape, np.uint8)
    act_space = _action_space(info)
    out.mkdir(parents=True, exist_ok=True)
    storage = MinariStorage.new(
        out / "data", observation_space=obs_space, action_space=act_space, env_spec=_env_spec(info),
        data_format="arrow", jpeg_encoding=False,
    )
    dataset_id = dataset_id or f"byog/{_slug(str(info.get('env', 'dataset')))}/export-v0"
    metas = []
    for pos in tqdm(range(ds.num_episodes), desc="minari", unit="episode"):
        ep = ds.episode(pos)
        n = ep.length
        if n < 2:
            continue  # Minari episodes need at least one step
        actions = ep.actions[: n - 1]
        if isinstance(act_space, gym.spaces.Discrete):
            if (actions < 0).any():
                raise ExportError(f"Episode {ep.index} lacks an action before its last frame; the dataset is inconsistent.")
            actions = actions.astype(np.int64)
        buffer = EpisodeBuffer(
            id=len(metas), seed=ep.record.get("seed"),
            observations=ep.frames, actions=np.asarray(actions),
            rewards=ep.rewards[1:].astype(np.float64), terminations=ep.terminated[1:],
            truncations=ep.truncated[1:],
        )
        storage.update_episodes([buffer])
        meta = {"byog_episode_index": ep.index, "annotations": ep.annotations}
        if ep.intent is not None:
            meta["intent"] = ep.intent
        metas.append(meta)
    if not metas:
        raise ExportError(f"{src} has no episode with at least two frames to export.")
    storage.update_episode_metadata(metas, range(len(metas)))
    storage.update_metadata({
        "dataset_id": dataset_id, "minari_version": _minari_dataset_version(minari),
        "algorithm_name": str(info.get("policy", "")), "author": {"BYOG exporter"},
        "code_permalink": "", "fps": info.get("fps"),
    })
    return out / "data"


def _env_spec(info: dict[str, Any]) -> Any:
    """The gymnasium spec of the env that made the dataset, so Minari's ``recover_environment()``
    rebuilds it: the one recorded at collection (``env_spec``), else (datasets collected before
    it was recorded) the spec of ``byog_env.make(env)`` when that env gives the dataset's frames;
    None for imported datasets, whose env cannot be built here."""
    from gymnasium.envs.registration import EnvSpec

    if info.get("env_spec"):
        return EnvSpec.from_json(info["env_spec"])
    import byog_env

    try:
        env = byog_env.make(str(info.get("env")), max_episode_steps=info.get("max_episode_steps"))
    except (ValueError, ImportError, gym.error.Error):
        return None
    try:
        same = env.observation_space.shape == tuple(info.get("frame_shape") or ())
        return env.spec if same else None
    finally:
        env.close()


def _minari_dataset_version(minari: Any) -> str:
    version = str(minari.__version__)
    return version if version in minari.supported_dataset_versions else max(minari.supported_dataset_versions)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text).strip("-") or "dataset"


def export_mp4(src: str | Path, out: str | Path, episodes: list[int] | None = None,
               fps: float | None = None, scale: int = 4) -> list[Path]:
    """Writes `out/episode_XXXXXX.mp4` per episode, annotations as subtitles."""
    from collect.video import hold_subtitles, write_video

    ds = open_dataset(src)
    chosen = list(range(ds.num_episodes)) if episodes is None else list(episodes)
    bad = [i for i in chosen if not 0 <= i < ds.num_episodes]
    if bad:
        raise ExportError(f"Episode positions {bad} are out of range; {src} has {ds.num_episodes} episodes.")
    rate = float(fps or ds.info.get("fps") or 10)
    paths = []
    for pos in tqdm(chosen, desc="mp4", unit="episode"):
        ep = ds.episode(pos)
        path = Path(out) / f"episode_{ep.index:06d}.mp4"
        paths.append(write_video(path, ep.frames, hold_subtitles(ep.annotations), scale=scale, fps=rate))
    return paths


@dataclass
class MinariExport:
    """A Minari dataset with raw (not JPEG) frames."""

    src: tyro.conf.Positional[Path]
    """BYOG dataset directory."""
    out: Path
    """Minari dataset root to create (data goes to OUT/data)."""
    dataset_id: str | None = None
    """Minari dataset id (default byog/<env>/export-v0)."""

    def run(self) -> None:
        print(f"wrote Minari dataset {export_minari(self.src, self.out, self.dataset_id)}")


@dataclass
class Mp4Export:
    """One mp4 preview per episode with the annotations as subtitles."""

    src: tyro.conf.Positional[Path]
    """BYOG dataset directory."""
    out: Path
    """Output directory for episode_XXXXXX.mp4 files."""
    episodes: list[int] | None = None
    """Episode positions to export (default all)."""
    fps: float | None = None
    """Frames per second (default the dataset's fps)."""
    scale: int = field(default=4)
    """Integer upscaling factor."""

    def __post_init__(self) -> None:
        if self.scale < 1:
            raise UsageError(f"--scale must be a positive integer, got {self.scale}.")
        if self.fps is not None and not 0 < self.fps < 1e6:  # the encoder fails deep inside otherwise
            raise UsageError(f"--fps must be a positive number of frames per second, got {self.fps}.")

    def run(self) -> None:
        paths = export_mp4(self.src, self.out, self.episodes, self.fps, self.scale)
        print(f"wrote {len(paths)} mp4 files to {self.out}")


EXPORTERS.register("minari", MinariExport)
EXPORTERS.register("mp4", Mp4Export)
EXPORTERS.register("lerobot", LeRobotExport)


def run(cfg: Any) -> None:
    """Runs one registered exporter's config (it prints where the output went)."""
    cfg.run()


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point; exit codes follow :mod:`byog_core.cli`."""
    return converter_cli(EXPORTERS, argv, __doc__.split("\n")[0])


if __name__ == "__main__":
    sys.exit(cli())
