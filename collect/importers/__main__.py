"""Import existing data into a BYOG dataset: `python -m collect.importers {vpt,minerl,minari,lerobot} SRC --out DIR`."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import tyro

from collect.errors import UsageError
from collect.importers import import_minari, import_minerl, import_vpt
from collect.importers.common import run_subcommand_cli
from collect.lerobot import LeRobotImport


@dataclass
class MineRLImport:
    """MineRL v0.4 trajectories (`recording.mp4`, `rendered.npz`, `metadata.json`)."""

    src: tyro.conf.Positional[Path]
    """Directory searched recursively for recordings/trajectories (or one of them)."""
    out: Path
    """New dataset directory."""
    size: tuple[int, int] = (64, 64)
    """Output frame size HEIGHT WIDTH (resized with INTER_LINEAR, as VPT)."""

    def __post_init__(self) -> None:
        if min(self.size) <= 0:
            raise UsageError(f"--size must be two positive integers, got {self.size}.")


@dataclass
class VPTImport(MineRLImport):
    """OpenAI VPT contractor recordings (`name.mp4` + `name.jsonl`)."""

    keep_null: bool = False
    """Keep frames whose action is null (VPT drops them)."""


@dataclass
class MinariImport:
    """A local Minari dataset with RGB-frame observations."""

    src: tyro.conf.Positional[str]
    """Minari dataset directory (its root or data/), or a locally installed dataset id."""
    out: Path
    """New dataset directory."""


def main(cfg: VPTImport | MineRLImport | MinariImport | LeRobotImport) -> dict:
    if isinstance(cfg, LeRobotImport):
        info = cfg.run()
    elif isinstance(cfg, VPTImport):
        info = import_vpt(cfg.src, cfg.out, size=cfg.size, keep_null=cfg.keep_null)
    elif isinstance(cfg, MineRLImport):
        info = import_minerl(cfg.src, cfg.out, size=cfg.size)
    else:
        info = import_minari(cfg.src, cfg.out)
    print(f"imported {info['num_episodes']} episodes, {info['num_frames']} frames,"
          f" {info['num_annotations']} annotations -> {cfg.out}")
    return info


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point; errors are printed as one message without a traceback."""
    return run_subcommand_cli(
        {"vpt": VPTImport, "minerl": MineRLImport, "minari": MinariImport, "lerobot": LeRobotImport},
        main, argv, __doc__,
    )


if __name__ == "__main__":
    sys.exit(cli())
