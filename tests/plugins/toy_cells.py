"""A cell entry point for the runner tests: doubles ``config["x"]`` and says which process ran it."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def double(config: dict[str, Any], out: Path) -> dict[str, Any]:
    (out / "side.txt").write_text(str(config["x"]))
    return {"value": 2 * config["x"], "pid": os.getpid()}
