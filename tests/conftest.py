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



_FAULT_COUNTS: dict[str, int] = {}


@pytest.fixture(scope="session")
def fault_counts() -> dict[str, int]:
    """Counters the fault-injection suite adds to (kills survived, bad inputs tried, episodes
    lost ...); printed at the end of the run."""
    return _FAULT_COUNTS


def pytest_terminal_summary(terminalreporter) -> None:
    if _FAULT_COUNTS:
        terminalreporter.write_line("fault suite: " + ", ".join(
            f"{k} = {v}" for k, v in sorted(_FAULT_COUNTS.items())))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tests on one torch thread (the CPU budget CI measures), then restore."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def one_thread():
    """torch on one thread for the test (tiny models: more threads only add contention on the
    small shared CI machine); modules opt in with ``pytestmark = usefixtures("one_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

