"""Import existing data into a BYOG dataset: `python -m collect.importers {vpt,minerl,minari,lerobot} SRC --out DIR`.

Each format is a registered config class with a `run()` (:mod:`collect.converters`); a plugin
format is named with `--plugin MODULE` before the subcommand."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tyro

from collect.converters import IMPORTERS, converter_cli
from collect.errors import UsageError
from collect.importers import import_minari, import_minerl, import_vpt
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

    def run(self) -> dict:
        return import_minerl(self.src, self.out, size=self.size)


@dataclass
class VPTImport(MineRLImport):
    """OpenAI VPT contractor recordings (`name.mp4` + `name.jsonl`)."""

    keep_null: bool = False
    """Keep frames whose action is null (VPT drops them)."""

    def run(self) -> dict:
        return import_vpt(self.src, self.out, size=self.size, keep_null=self.keep_null)


@dataclass
class MinariImport:
    """A local Minari dataset with RGB-frame observations."""

    src: tyro.conf.Positional[str]
    """Minari dataset directory (its root or data/), or a locally installed dataset id."""
    out: Path
    """New dataset directory."""

    def run(self) -> dict:
        return import_minari(self.src, self.out)


IMPORTERS.register("vpt", VPTImport)
IMPORTERS.register("minerl", MineRLImport)
IMPORTERS.register("minari", MinariImport)
IMPORTERS.register("lerobot", LeRobotImport)


def main(cfg: Any) -> dict:
    """Run one registered importer's config and print what it imported."""
    info = cfg.run()
    _report(cfg, info)
    return info


def _report(cfg: Any, info: dict) -> None:
    print(f"imported {info['num_episodes']} episodes, {info['num_frames']} frames,"
          f" {info['num_annotations']} annotations -> {cfg.out}")


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point; exit codes follow :mod:`byog_core.cli`."""
    return converter_cli(IMPORTERS, argv, __doc__, report=_report)


if __name__ == "__main__":
    sys.exit(cli())
