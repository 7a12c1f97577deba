"""Write a per-frame embedding column into a dataset from a LOCAL frozen checkpoint.

    python -m agents.obs.embed DATA_DIR --encoder hf:/models/clip-vit-b32 [--batch-size 64]

Specs: ``vqvae:<dir>`` (our fitted VQ-VAE), ``units:<dir>`` (a per-frame units encoder), any
other fitted observation encoder as ``<kind>:<dir>`` / ``<module>:<kind>:<dir>``,
``hf:<local dir>`` (a transformers vision model saved with its image processor: CLIP, ViT,
DINOv2, ...) and ``torchscript:<file.pt>`` (any module mapping float ``[N, 3, H, W]`` in [0, 1]
to ``[N, D]``). Nothing is downloaded. The column (``embedding`` by default, float32 ``[L, D]``
per episode) is then read with ``WindowDataset(..., columns=("embedding",))`` and the
``precomputed`` obs encoder.

Every episode file is rewritten atomically (``collect.writer.add_column``), and progress is
recorded in ``meta/info.json["<column>_encoder"]`` = ``{"spec", "fingerprint", "dim",
"complete", "done"}`` after each group of episodes, so a killed run resumes where it stopped
and a finished run with the same checkpoint is a no-op. A column written by another checkpoint
is only replaced with ``--force``.

Plugging in VPT embeddings (the seed's Experiment 1). In a checkout of
openai/Video-Pre-Training with its ``.model``/``.weights`` files, wrap the policy's per-frame
image stack (ImpalaCNN, before the recurrent transformer; it expects channels-last frames in
0..255 at 128x128, which VPT resizes with INTER_LINEAR) and save it as TorchScript::

    import torch, torch.nn.functional as F
    from agent import MineRLAgent                      # VPT repo
    agent = MineRLAgent(env, policy_kwargs=policy_kwargs, pi_head_kwargs=pi_head_kwargs)
    agent.load_weights("foundation-model-1x.weights")
    net = agent.policy.net                             # MinecraftPolicy

    class VPTFrames(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.pre, self.proc = net.img_preprocess, net.img_process
        def forward(self, x):                          # [N, 3, H, W] in [0, 1]
            x = F.interpolate(x, size=(128, 128), mode="bilinear", align_corners=False)
            x = (x * 255).permute(0, 2, 3, 1)[:, None]  # [N, 1, 128, 128, 3] = VPT's [B, T, H, W, C]
            return self.proc(self.pre(x))[:, 0]        # [N, hidsize]

    torch.jit.save(torch.jit.trace(VPTFrames(net).eval(), torch.rand(2, 3, 128, 128)), "vpt.pt")

then ``python -m agents.obs.embed DATA_DIR --encoder torchscript:vpt.pt``.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import tyro
from tqdm.auto import tqdm

from agents.obs.base import ObsEncoderError
from agents.obs.embedders import FrameEmbedder, load_embedder


@dataclass
class EmbedConfig:
    """Compute a per-frame embedding column for a dataset from a local checkpoint."""

    dataset: tyro.conf.Positional[Path]
    """Dataset directory (with meta/info.json and data/chunk-*/episode_*.parquet)."""
    encoder: str
    """Checkpoint spec: vqvae:<dir>, units:<dir>, hf:<local dir> or torchscript:<file.pt>
    (TorchScript runs the code inside the file: pass only a file you trust like a program)."""
    batch_size: int = 64
    """Frames per forward pass."""
    column: str = "embedding"
    """Name of the column to write."""
    device: str = "cpu"
    """Torch device for the embedder (cpu, cuda, cuda:1, ...)."""
    force: bool = False
    """Replace a column written by a different checkpoint (or by an unknown tool)."""
    group_episodes: int = 16
    """Episodes rewritten between two progress records (the resume granularity)."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ObsEncoderError(f"--batch-size must be >= 1, got {self.batch_size}.")
        if self.group_episodes < 1:
            raise ObsEncoderError(f"--group-episodes must be >= 1, got {self.group_episodes}.")
        if not self.column.isidentifier():
            raise ObsEncoderError(f"--column must be a plain name like 'embedding', got {self.column!r}.")


def embed_frames(embedder: FrameEmbedder, frames: np.ndarray, *, batch_size: int = 64,
                 on_batch: Any = None) -> np.ndarray:
    """Embed frames in batches: uint8 [L, H, W, 3] -> float32 [L, D]."""
    out = []
    for i in range(0, len(frames), batch_size):
        chunk = frames[i:i + batch_size]
        out.append(embedder(torch.from_numpy(np.ascontiguousarray(chunk))).numpy())
        if on_batch is not None:
            on_batch(len(chunk))
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, embedder.dim), np.float32)


def read_info(path: Path) -> dict[str, Any]:
    """A dataset's ``meta/info.json`` (clear error if ``path`` is not a dataset)."""
    info_path = path / "meta" / "info.json"
    if not info_path.is_file():
        raise ObsEncoderError(
            f"{path} is not a BYOG dataset (no meta/info.json); collect one with "
            "`python -m collect.rollout` or pass the dataset's root directory."
        )
    return json.loads(info_path.read_text())


def embedding_dim(path: str | Path, column: str = "embedding") -> int:
    """Width D of a dataset's embedding column (for ``ObsEncoderConfig.precomputed_dim``)."""
    state = read_info(Path(path)).get(f"{column}_encoder")
    if not state or not state.get("complete"):
        raise ObsEncoderError(
            f"{path} has no complete '{column}' column; write it with "
            f"`python -m agents.obs.embed {path} --encoder SPEC`."
        )
    return int(state["dim"])


def _record_progress(path: Path, key: str, ours: dict[str, Any], done: set[int],
                     complete: bool) -> None:
    """Record in ``info.json`` which episodes hold the column (a killed run resumes there)."""
    from collect.writer import atomic_write_json

    cur = read_info(path)  # add_column rewrote info.json (counts, columns): keep its version
    cur[key] = {**ours, "complete": complete, **({} if complete else {"done": sorted(done)})}
    atomic_write_json(path / "meta" / "info.json", cur)


def _rgb_frame_shape(path: Path, info: dict[str, Any]) -> tuple[int, int]:
    """``(H, W)`` of the dataset's RGB frames, or one error line when they are not RGB."""
    frame_shape = info.get("frame_shape")
    if not frame_shape or len(frame_shape) != 3 or frame_shape[2] != 3:
        raise ObsEncoderError(
            f"{path}/meta/info.json has frame_shape {frame_shape}; agents.obs.embed needs RGB frames "
            "[H, W, 3]."
        )
    return (frame_shape[0], frame_shape[1])


def _episodes_done(path: Path, records: dict[int, Any], column: str, state: dict[str, Any] | None,
                   spec: str, same: bool, force: bool) -> set[int]:
    """Episodes whose file already holds this embedder's column (a resumed run skips them); a
    column another embedder wrote is an error unless ``force`` (then every episode is redone)."""
    has_column = {i for i, r in records.items() if column in r.get("columns", [])}
    if not same and not force and (state or has_column):
        who = f"by {state['spec']!r}" if state else "by an unknown tool"
        raise ObsEncoderError(
            f"{path} already has a '{column}' column written {who}; pass --force to replace it "
            f"with {spec!r}, or --column NAME to write another column."
        )
    done = set(state.get("done", records if state.get("complete") else [])) if same else set()
    return done & has_column  # an episode only counts as done if its file really has the column


def embed_dataset(path: str | Path, spec: str | FrameEmbedder, *, batch_size: int = 64,
                  column: str = "embedding", device: str = "cpu", force: bool = False,
                  group_episodes: int = 16, progress: bool = True) -> dict[str, Any]:
    """Compute and store the embedding column of every episode (resumable, idempotent).

    Args:
        path: Dataset directory.
        spec: Checkpoint spec (see the module docstring) or a loaded embedder.
        batch_size: Frames per forward pass.
        column: Column name.
        device: Torch device.
        force: Replace a column written by another checkpoint.
        group_episodes: Episodes between progress records.
        progress: Show a tqdm bar over frames.

    Returns:
        ``{"column", "spec", "dim", "episodes_written", "episodes_skipped", "frames_written"}``.
    """
    from collect.writer import add_column, scan_episode_files

    path = Path(path)
    info = read_info(path)
    embedder = spec if isinstance(spec, FrameEmbedder) else load_embedder(
        spec, device=device, probe_shape=_rgb_frame_shape(path, info))
    records = scan_episode_files(path)
    if not records:
        raise ObsEncoderError(f"{path} has no episode files; nothing to embed.")
    key = f"{column}_encoder"
    state = info.get(key)
    ours = {"spec": embedder.spec, "fingerprint": embedder.fingerprint, "dim": embedder.dim}
    same = bool(state) and state.get("fingerprint") == embedder.fingerprint
    done = _episodes_done(path, records, column, state, embedder.spec, same, force)
    todo = sorted(set(records) - done)
    summary = {"column": column, "spec": embedder.spec, "dim": embedder.dim,
               "episodes_written": len(todo), "episodes_skipped": len(records) - len(todo),
               "frames_written": sum(records[i]["length"] for i in todo)}
    if not todo and same and state.get("complete"):
        return summary

    bar = tqdm(total=summary["frames_written"], desc=f"embed {column}", unit="frame",
               disable=not progress)

    def values(episode_index: int, rows: Any) -> np.ndarray:
        frames = rows.frames  # collect.format.EpisodeTable: uint8 [L, H, W, 3]
        return embed_frames(embedder, frames, batch_size=batch_size, on_batch=bar.update)

    try:
        _record_progress(path, key, ours, done, complete=False)
        for g in range(0, len(todo), group_episodes):
            group = todo[g:g + group_episodes]
            add_column(path, column, values, episodes=group)
            done.update(group)
            _record_progress(path, key, ours, done, complete=False)
        _record_progress(path, key, ours, done, complete=True)
    finally:
        bar.close()
    return summary


def main(cfg: EmbedConfig) -> dict[str, Any]:
    """Run :func:`embed_dataset` for the CLI config and print a one-line summary."""
    summary = embed_dataset(cfg.dataset, cfg.encoder, batch_size=cfg.batch_size,
                            column=cfg.column, device=cfg.device, force=cfg.force,
                            group_episodes=cfg.group_episodes)
    print(f"{cfg.dataset}: column '{summary['column']}' of width {summary['dim']} from "
          f"{summary['spec']}: {summary['episodes_written']} episodes written, "
          f"{summary['episodes_skipped']} already up to date.")
    return summary


def cli(argv: list[str] | None = None) -> int:
    """Console entry point, under the one exit-code policy (:mod:`byog_core.cli`): a bad input
    is one ``error:`` line and exit 2, a failure while running 1, Ctrl-C 130."""
    from byog_core.cli import run_cli

    return run_cli(lambda: main(tyro.cli(EmbedConfig, args=argv)),
                   on_interrupt="stopped; episodes already written are kept: rerun to finish.")


if __name__ == "__main__":
    sys.exit(cli())
