"""Test-wide settings: offline, headless, deterministic, and quiet; shared fixtures."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


TESTS_DIR = Path(__file__).resolve().parent


@pytest.fixture
def plugin_env() -> dict[str, str]:
    """os.environ for a subprocess that must import the suite's plugins (``plugins.*``)."""
    path = os.pathsep.join(p for p in (str(TESTS_DIR), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}
