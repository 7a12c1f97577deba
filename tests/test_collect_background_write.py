"""DatasetWriter(background=True): the collector's episode files (Parquet, zstd, fsync, rename) are
written on one thread while the env steps; the files, the error policy and the end of a run are
those of the foreground writer (issue 26 part 3: collector speed)."""
import threading

import numpy as np
import pytest

import collect.writer as writer_module
from collect.dataset import open_dataset
from collect.errors import DatasetError
from collect.writer import DatasetWriter

INFO = {"env": "standin", "fps": 10, "policy": "random", "action_space": {"type": "Discrete", "n": 4, "start": 0}}


def _episode(rng, n=6):
    return {"frames": rng.integers(0, 255, (n, 8, 8, 3), dtype=np.uint8), "actions": rng.integers(0, 4, n - 1),
            "rewards": np.zeros(n, np.float32), "terminated": np.arange(n) == n - 1, "annotations": [["x"]] * n}


def _write(path, background, episodes):
    w = DatasetWriter(path, dict(INFO), background=background)
    for i, ep in enumerate(episodes):
        w.write_episode(i, ep["frames"], ep["actions"], rewards=ep["rewards"], terminated=ep["terminated"],
                        annotations=ep["annotations"], seed=i)
    return w.finalize()


def test_background_files_equal_foreground(tmp_path):
    rng = np.random.default_rng(0)
    episodes = [_episode(rng, n) for n in (5, 9, 3)]
    fg, bg = _write(tmp_path / "fg", False, episodes), _write(tmp_path / "bg", True, episodes)
    assert fg["num_frames"] == bg["num_frames"] == 17 and fg["total_bytes"] == bg["total_bytes"]
    for a, b in zip(open_dataset(tmp_path / "fg").iter_episodes(), open_dataset(tmp_path / "bg").iter_episodes()):
        np.testing.assert_array_equal(a.frames, b.frames)
        assert a.record == b.record


def test_write_episode_returns_while_the_file_is_written(tmp_path, monkeypatch):
    """The caller goes on while the file is being written; wait() returns once it is on disk."""
    release, started = threading.Event(), threading.Event()
    real = writer_module.write_table_atomic

    def slow(*args, **kwargs):
        started.set()
        assert release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(writer_module, "write_table_atomic", slow)
    w = DatasetWriter(tmp_path / "d", dict(INFO), background=True)
    ep = _episode(np.random.default_rng(1))
    record = w.write_episode(0, ep["frames"], ep["actions"], terminated=ep["terminated"])
    assert started.wait(10) and "bytes" not in record  # returned before the file exists
    assert not (tmp_path / "d" / record["file"]).exists()
    release.set()
    w.wait()
    assert (tmp_path / "d" / record["file"]).stat().st_size == record["bytes"]
    assert w.finalize()["num_episodes"] == 1


def test_a_failed_background_write_is_raised(tmp_path, monkeypatch):
    def full_disk(*args, **kwargs):
        raise DatasetError("Could not write the file (No space left on device); the disk may be full.")

    monkeypatch.setattr(writer_module, "write_table_atomic", full_disk)
    w = DatasetWriter(tmp_path / "d", dict(INFO), background=True)
    ep = _episode(np.random.default_rng(2))
    w.write_episode(0, ep["frames"], ep["actions"], terminated=ep["terminated"])  # queued
    with pytest.raises(DatasetError, match="disk may be full"):
        w.write_episode(1, ep["frames"], ep["actions"], terminated=ep["terminated"])
    w.write_episode(2, ep["frames"], ep["actions"], terminated=ep["terminated"])
    with pytest.raises(DatasetError, match="disk may be full"):
        w.finalize()
    w.close()


def test_close_keeps_the_error_in_flight(tmp_path, monkeypatch):
    """Ctrl-C while a file is being written: close() lets the write finish and the interrupt
    (not a later error) reaches the user."""
    monkeypatch.setattr(writer_module, "write_table_atomic", lambda *a, **k: 1 / 0)
    w = DatasetWriter(tmp_path / "d", dict(INFO), background=True)
    ep = _episode(np.random.default_rng(3))
    with pytest.raises(KeyboardInterrupt):
        try:
            w.write_episode(0, ep["frames"], ep["actions"], terminated=ep["terminated"])
            raise KeyboardInterrupt
        finally:
            w.close()
