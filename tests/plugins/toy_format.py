"""A dataset format added from outside the collect package (issue 23's recipe: one new file,
zero edits): ``npz`` writes each episode's frames, actions and annotations to one
``episode_XXXXXX.npz``, and reads such a directory back into a BYOG dataset. Use it with
``python -m collect.export --plugin plugins.toy_format npz DIR --out DEST`` and
``python -m collect.importers --plugin plugins.toy_format npz DEST --out NEW``."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tyro

from collect.converters import EXPORTERS, IMPORTERS
from collect.dataset import open_dataset
from collect.errors import ExportError, ImporterError
from collect.writer import DatasetWriter


@EXPORTERS.register("npz")
@dataclass
class NpzExport:
    """One .npz per episode: frames, actions, annotations (JSON)."""

    src: tyro.conf.Positional[Path]
    """BYOG dataset directory."""
    out: Path
    """Directory to create."""

    def run(self) -> None:
        ds = open_dataset(self.src)
        if self.out.exists():
            raise ExportError(f"{self.out} already exists; choose another --out.")
        self.out.mkdir(parents=True)
        (self.out / "info.json").write_text(json.dumps({"env": ds.info.get("env"),
                                                        "action_space": ds.info.get("action_space")}))
        for pos in range(ds.num_episodes):
            ep = ds.episode(pos)
            np.savez(self.out / f"episode_{ep.index:06d}.npz", frames=ep.frames, actions=ep.actions,
                     annotations=json.dumps(ep.annotations))
        print(f"wrote {ds.num_episodes} npz files to {self.out}")


@IMPORTERS.register("npz")
@dataclass
class NpzImport:
    """A directory written by the npz exporter."""

    src: tyro.conf.Positional[Path]
    """Directory of episode_XXXXXX.npz files (and info.json)."""
    out: Path
    """New dataset directory."""

    def run(self) -> dict[str, Any]:
        files = sorted(self.src.glob("episode_*.npz"))
        if not files:
            raise ImporterError(f"{self.src} holds no episode_*.npz files; export some with the npz exporter.")
        meta = json.loads((self.src / "info.json").read_text())
        writer = DatasetWriter(self.out, resume_flag=None, info={"env": meta["env"], "source": "npz",
                                                                 "action_space": meta["action_space"]})
        for path in files:
            with np.load(path) as z:
                frames, actions = z["frames"], z["actions"]
                annotations = json.loads(str(z["annotations"]))
            writer.write_episode(int(path.stem.split("_")[1]), frames, actions, annotations=annotations)
        return writer.finalize()
