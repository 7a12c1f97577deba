"""Dataset format: writer/reader round trip, validation errors, windows, collate, split."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import gymnasium as gym
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from collect.dataset import (
    DatasetError,
    DatasetWriter,
    WindowDataset,
    add_column,
    collate_windows,
    open_dataset,
    space_to_json,
    split_episodes,
    window_starts,
)
from collect.writer import ROW_GROUP_SIZE, flatten_action, unflatten_action

LENGTHS = (5, ROW_GROUP_SIZE + 40, 3)


def _episode(rng: np.random.Generator, i: int, length: int) -> dict:
    return {
        "frames": rng.integers(0, 256, (length, 6, 5, 3), dtype=np.uint8),
        "actions": rng.integers(0, 4, length - 1),
        "rewards": rng.normal(size=length).astype(np.float32),
        "annotations": [[f"e{i} t{t}", "twice"] if t % 4 == 0 else [] for t in range(length)],
        "embedding": rng.normal(size=(length, 3)).astype(np.float32),
    }


@pytest.fixture()
def dataset(tmp_path: Path) -> tuple[Path, list[dict]]:
    rng = np.random.default_rng(0)
    eps = [_episode(rng, i, n) for i, n in enumerate(LENGTHS)]
    writer = DatasetWriter(tmp_path / "ds", {"env": "toy", "action_space": space_to_json(gym.spaces.Discrete(4))})
    for i, e in enumerate(eps):
        term = np.zeros(len(e["frames"]), bool)
        term[-1] = True
        writer.write_episode(i, e["frames"], e["actions"], rewards=e["rewards"], terminated=term,
                             annotations=e["annotations"], extra={"embedding": e["embedding"]},
                             seed=100 + i, success=i % 2 == 0, achievements=["collect_wood"] * i)
    info = writer.finalize(fps=7)
    assert info["num_episodes"] == 3 and info["num_frames"] == sum(LENGTHS)
    assert info["num_steps"] == sum(LENGTHS) - 3 and info["fps"] == 7
    return tmp_path / "ds", eps


def test_round_trip_is_bit_exact(dataset):
    path, eps = dataset
    ds = open_dataset(path)
    ds.validate(deep=True)
    assert ds.num_episodes == 3 and ds.frame_shape == (6, 5, 3)
    for pos, (ep, ref) in enumerate(zip(ds.iter_episodes(), eps)):
        assert ep.index == pos and ep.length == LENGTHS[pos]
        np.testing.assert_array_equal(ep.frames, ref["frames"])
        np.testing.assert_array_equal(ep.actions[:-1], ref["actions"])
        assert ep.actions[-1] == -1 and ep.actions.dtype == np.int64
        np.testing.assert_array_equal(ep.rewards, ref["rewards"])
        assert ep.terminated.tolist() == [False] * (ep.length - 1) + [True]
        assert ep.annotations == ref["annotations"]
        np.testing.assert_array_equal(ep.extra["embedding"], ref["embedding"])
        assert ep.record["seed"] == 100 + pos and ep.record["success"] == (pos % 2 == 0)
        assert ep.record["achievements"] == (["collect_wood"] if pos else [])
        assert ep.intent is None
    rows = pq.read_table(path / "meta" / "episodes.parquet").to_pylist()
    assert [r["file"] for r in rows] == [f"data/chunk-000/episode_{i:06d}.parquet" for i in range(3)]
    assert pq.read_metadata(path / rows[1]["file"]).row_group(0).column(2).compression == "ZSTD"


def test_vector_actions_round_trip_with_layout(tmp_path):
    space = gym.spaces.Dict({"camera": gym.spaces.Box(-180, 180, (2,)), "forward": gym.spaces.Discrete(2)})
    desc = space_to_json(space)
    assert [e["key"] for e in desc["layout"]] == ["camera", "forward"]
    space.seed(0)
    acts = [space.sample() for _ in range(4)]
    vecs = np.stack([flatten_action(a, desc["layout"]) for a in acts])
    writer = DatasetWriter(tmp_path, {"env": "mc", "action_space": desc})
    frames = np.zeros((5, 4, 4, 3), np.uint8)
    writer.write_episode(0, frames, vecs, intent=[["chop"]] * 5)
    writer.finalize()
    ep = open_dataset(tmp_path).episode(0)
    assert ep.actions.shape == (5, 3) and ep.actions.dtype == np.float32 and np.isnan(ep.actions[-1]).all()
    back = unflatten_action(ep.actions[2], desc["layout"])
    np.testing.assert_allclose(back["camera"], acts[2]["camera"])
    assert back["forward"] == int(acts[2]["forward"])
    assert ep.intent == [["chop"]] * 5
    item = WindowDataset(tmp_path, window=8, columns=("intent",))[0]
    assert item["actions"].shape == (8, 3) and item["action_valid"].tolist() == [True] * 4 + [False] * 4
    assert item["intent"][:5] == [["chop"]] * 5 and item["intent"][5:] == [[], [], []]


def test_writer_refuses_existing_dataset_and_bad_input(dataset, tmp_path):
    path, _ = dataset
    with pytest.raises(DatasetError, match="already holds a dataset; pass --resume"):
        DatasetWriter(path, {"env": "toy"})
    with pytest.raises(DatasetError, match="collected with env='toy'"):
        DatasetWriter(path, {"env": "other"}, resume=True)
    writer = DatasetWriter(tmp_path / "new", {"env": "toy"})
    with pytest.raises(DatasetError, match="3 actions for 5 frames"):
        writer.write_episode(0, np.zeros((5, 2, 2, 3), np.uint8), [0, 1, 2])
    with pytest.raises(DatasetError, match="`annotations` has 2 entries but the episode has 5 frames"):
        writer.write_episode(0, np.zeros((5, 2, 2, 3), np.uint8), [0] * 4, annotations=[[], []])


def _first_file(path: Path) -> Path:
    return path / "data" / "chunk-000" / "episode_000001.parquet"


def test_missing_file_is_named(dataset):
    path, _ = dataset
    _first_file(path).unlink()
    with pytest.raises(DatasetError, match=r"episode_000001\.parquet listed in meta/episodes\.parquet is missing"):
        open_dataset(path)


def test_truncated_file_is_named(dataset):
    path, _ = dataset
    f = _first_file(path)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(DatasetError, match=r"episode_000001\.parquet is truncated or corrupt"):
        open_dataset(path)


def test_corrupt_pages_are_named_on_read(dataset):
    path, _ = dataset
    f = _first_file(path)
    data = bytearray(f.read_bytes())
    for k in range(100, 4000, 7):  # scribble over data pages, keep the footer intact
        data[k] ^= 0xFF
    f.write_bytes(bytes(data))
    ds = open_dataset(path)  # the footer still parses
    with pytest.raises(DatasetError, match=r"episode_000001\.parquet"):
        ds.validate(deep=True)


def test_length_mismatch_is_named(dataset, tmp_path):
    path, eps = dataset
    other = DatasetWriter(tmp_path / "other", {"env": "toy"})
    other.write_episode(1, eps[0]["frames"], eps[0]["actions"])
    _first_file(path).write_bytes(_first_file(tmp_path / "other").read_bytes())
    with pytest.raises(DatasetError, match=r"episode_000001\.parquet has 5 rows but meta/episodes\.parquet says 296"):
        open_dataset(path)


def test_frame_shape_mismatch_is_named(dataset):
    path, _ = dataset
    info = json.loads((path / "meta" / "info.json").read_text())
    info["frame_shape"] = [6, 6, 3]
    (path / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetError, match=r"episode_000000\.parquet: the frame at row 0 is a P6 5x6 PPM image \(maxval 255\), but meta/info.json frame_shape \[6, 6, 3\] needs 108"):
        open_dataset(path).episode(0)


def test_missing_meta_and_directory(tmp_path):
    with pytest.raises(DatasetError, match="does not exist; collect one"):
        open_dataset(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    with pytest.raises(DatasetError, match=r"info\.json is missing"):
        open_dataset(tmp_path / "half")


def test_window_starts_cover_every_frame_once_padded_at_end():
    assert window_starts(10, 4, 4) == [0, 4, 8]
    assert window_starts(10, 4, 2) == [0, 2, 4, 6]
    assert window_starts(3, 4, 2) == [0]
    assert window_starts(4, 4, 1) == [0]


def test_windows_boundaries_masks_and_values(dataset):
    path, eps = dataset
    wd = WindowDataset(path, window=4, stride=3, columns=("embedding",), cache_size=2)
    expected = [(p, s) for p, n in enumerate(LENGTHS) for s in window_starts(n, 4, 3)]
    assert wd.index == expected and len(wd) == len(expected)
    for i, (pos, start) in enumerate(expected):
        item = wd[i]
        ref, n = eps[pos], LENGTHS[pos]
        k = min(4, n - start)
        assert item["episode_index"] == pos and item["start"] == start
        assert item["frames"].dtype == torch.uint8 and item["frames"].shape == (4, 6, 5, 3)
        assert item["valid"].tolist() == [True] * k + [False] * (4 - k)
        np.testing.assert_array_equal(item["frames"][:k].numpy(), ref["frames"][start: start + k])
        assert not item["frames"][k:].any()
        # the frame before the window (frame deltas); an episode's first window repeats frame 0
        np.testing.assert_array_equal(item["prev_frame"].numpy(), ref["frames"][max(start - 1, 0)])
        acts = np.concatenate([ref["actions"], [-1]])[start: start + k]
        assert item["actions"].tolist() == acts.tolist() + [-1] * (4 - k)
        assert item["action_valid"].tolist() == [a >= 0 for a in acts] + [False] * (4 - k)
        np.testing.assert_array_equal(item["rewards"][:k].numpy(), ref["rewards"][start: start + k])
        assert item["annotations"] == ref["annotations"][start: start + k] + [[]] * (4 - k)
        np.testing.assert_array_equal(item["embedding"][:k].numpy(), ref["embedding"][start: start + k])
        assert not item["embedding"][k:].any()
    # a window spanning the row-group boundary of the long episode
    crossing = [i for i, (p, s) in enumerate(expected) if p == 1 and s < ROW_GROUP_SIZE < s + 4]
    assert crossing and wd[crossing[0]]["valid"].all()
    assert len(wd._cache) <= 2


def test_collate_and_dataloader_workers(dataset):
    path, _ = dataset
    wd = WindowDataset(path, window=8, stride=8, episodes=[0, 2])
    assert len(wd) == 2
    batch = collate_windows([wd[0], wd[1]])
    assert batch["frames"].shape == (2, 8, 6, 5, 3) and batch["valid"].sum().item() == 5 + 3
    assert batch["prev_frame"].shape == (2, 6, 5, 3) and batch["prev_frame"].dtype == torch.uint8
    assert batch["episode_index"].tolist() == [0, 2] and len(batch["annotations"]) == 2
    assert len(batch["annotations"][0]) == 8
    windows = WindowDataset(path, window=16)
    first = windows[0]  # opens files and fills the cache in this process
    clone = pickle.loads(pickle.dumps(windows))  # what a spawned worker receives
    assert not clone._cache and not clone.dataset._files
    assert torch.equal(clone[0]["frames"], first["frames"])
    loader = torch.utils.data.DataLoader(windows, batch_size=4, num_workers=2, collate_fn=collate_windows)
    total = sum(int(b["valid"].sum()) for b in loader)
    assert total == sum(LENGTHS)


def test_window_dataset_rejects_bad_arguments(dataset):
    path, _ = dataset
    with pytest.raises(DatasetError, match="no column"):
        WindowDataset(path, window=4, columns=("clip",))
    with pytest.raises(DatasetError, match="out of range"):
        WindowDataset(path, window=4, episodes=[7])
    with pytest.raises(DatasetError, match="window must be >= 1"):
        WindowDataset(path, window=0)


def test_split_episodes_is_disjoint_deterministic_and_by_episode():
    train, val = split_episodes(20, 0.25, seed=3)
    assert len(val) == 5 and len(train) == 15 and not set(train) & set(val)
    assert sorted(train + val) == list(range(20))
    assert (train, val) == split_episodes(20, 0.25, seed=3)
    assert split_episodes(20, 0.25, seed=4) != (train, val)
    assert split_episodes(2, 0.1, seed=0)[1] and split_episodes(5, 0.0, 0) == ([0, 1, 2, 3, 4], [])
    with pytest.raises(DatasetError, match="val_fraction"):
        split_episodes(5, 1.0, 0)


def test_add_column_replaces_atomically(dataset):
    path, _ = dataset
    add_column(path, "embedding", lambda i, t: np.full((t.num_rows, 2), i, np.float32))
    add_column(path, "score", lambda i, t: np.arange(t.num_rows))
    ds = open_dataset(path)
    ep = ds.episode(2)
    assert ep.extra["embedding"].tolist() == [[2.0, 2.0]] * 3
    assert ep.extra["score"].tolist() == [0.0, 1.0, 2.0]
    assert "score" in ds.info["columns"] and ds.records[2]["seed"] == 102
    assert not list(path.rglob("*.tmp"))
    with pytest.raises(DatasetError, match="core column"):
        add_column(path, "frame", lambda i, t: 0)


def test_set_annotations_rewrites_only_that_column_and_the_counts(dataset):
    from collect.writer import set_annotations

    path, _ = dataset
    before = open_dataset(path).episode(1)
    new = [["pseudo"] if t == 1 else [] for t in range(before.length)]
    set_annotations(path, {1: new})
    ds = open_dataset(path)
    ep = ds.episode(1)
    assert ep.annotations == new and ds.records[1]["num_annotations"] == 1
    np.testing.assert_array_equal(ep.frames, before.frames)
    np.testing.assert_array_equal(ep.actions, before.actions)
    assert ds.info["num_annotations"] == 1 + sum(r["num_annotations"] for r in ds.records if r["episode_index"] != 1)
    assert not list(path.rglob("*.tmp"))
    with pytest.raises(DatasetError, match="`annotations` has 1 entries"):
        set_annotations(path, {0: [["x"]]})
