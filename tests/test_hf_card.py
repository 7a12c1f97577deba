"""Hugging Face ``datasets`` reads our dataset directories (collect/hf_card.py): the card's
config and features, PPM frames decoded without our code, action names, time columns, and 1.0
datasets that still open and resume as 1.0."""
import json

import numpy as np
import pytest

from collect.dataset import open_dataset
from collect.rollout import CollectConfig, main
from collect.writer import DatasetWriter

datasets = pytest.importorskip("datasets")


@pytest.fixture(scope="module")
def babyai_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("hf") / "babyai"
    main(CollectConfig(env="babyai-gotolocal", out=out, episodes=2, max_episode_steps=8,
                       vector_mode="sync", progress=False))
    return out


def test_load_dataset_dir_decodes_frames_without_our_code(babyai_dir, tmp_path):
    ds = datasets.load_dataset(str(babyai_dir), cache_dir=str(tmp_path / "cache"))
    ours = open_dataset(babyai_dir)
    assert list(ds) == ["train"] and len(ds["train"]) == ours.info["num_frames"]  # not meta/episodes
    row = ds["train"][0]
    frame = np.asarray(row["frame"])  # a PIL image: the datasets Image feature decoded the PPM
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    first = ours.episode(0)
    np.testing.assert_array_equal(frame, first.frames[0])
    assert row["annotations"] == first.annotations[0] and row["frame_index"] == 0
    last = ds["train"][first.frames.shape[0] - 1]
    assert last["timestamp"] == pytest.approx((first.frames.shape[0] - 1) / ours.info["fps"])
    assert isinstance(ds["train"].features["frame"], datasets.Image)


def test_action_names_in_info_and_card(babyai_dir):
    info = json.loads((babyai_dir / "meta" / "info.json").read_text())
    assert info["action_names"] == ["left", "right", "forward", "pickup", "drop", "toggle", "done"]
    assert info["format_version"] == "1.1" and info["frame_format"] == "ppm"
    card = (babyai_dir / "README.md").read_text()
    assert "path: data/*/*.parquet" in card and "0 `left`" in card and "6 `done`" in card


def test_our_reader_stays_zero_copy(babyai_dir):
    frames = open_dataset(babyai_dir).episode(0).frames
    assert frames.shape[1:] == (64, 64, 3) and not frames.flags.owndata  # a view into Arrow's buffer


def _old_dataset(path, rng):
    """A format 1.0 dataset exactly as the code before 1.1 wrote it: raw frames, no time columns."""
    w = DatasetWriter(path, info={"env": "crafter", "fps": 10, "frame_format": "raw",
                                  "action_space": {"type": "Discrete", "n": 17, "start": 0}})
    frames = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    w.write_episode(0, frames, rng.integers(0, 17, 4), annotations=[["collected 1 wood"]] * 5)
    w.finalize()
    info = json.loads((path / "meta" / "info.json").read_text())
    info.pop("frame_format")
    (path / "meta" / "info.json").write_text(json.dumps(info))
    return frames


def test_old_datasets_open_and_resume_as_1_0(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "old"
    frames = _old_dataset(path, rng)
    import pyarrow.parquet as pq

    table = pq.read_table(path / "data/chunk-000/episode_000000.parquet")
    assert "timestamp" not in table.column_names and len(table.column("frame")[0].as_py()) == 8 * 8 * 3
    np.testing.assert_array_equal(open_dataset(path).episode(0).frames, frames)
    # Resume with today's writer and today's default info: the dataset keeps its 1.0 layout.
    w = DatasetWriter(path, info={"env": "crafter", "fps": 10,
                                  "action_space": {"type": "Discrete", "n": 17, "start": 0}}, resume=True)
    more = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    w.write_episode(1, more, rng.integers(0, 17, 2))
    info = w.finalize()
    assert info["format_version"] == "1.0" and info["frame_format"] == "raw"
    ds = open_dataset(path)
    np.testing.assert_array_equal(ds.episode(1).frames, more)
    # datasets still loads it (frames as raw bytes: the card says binary).
    hf = datasets.load_dataset(str(path), cache_dir=str(tmp_path / "cache"))["train"]
    assert len(hf) == 8 and isinstance(hf[0]["frame"], bytes)


def _downgrade_to_1_0(path):
    """Rewrites a dataset as the pre-1.1 code wrote it (raw frames, no time columns, no card)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from collect.format import EPISODE_METADATA_KEY

    for f in sorted(path.glob("data/chunk-*/episode_*.parquet")):
        table = pq.read_table(f)
        raw = [v.split(b"\n", 3)[-1] for v in table.column("frame").to_pylist()]
        table = table.set_column(table.column_names.index("frame"), "frame", pa.array(raw, pa.binary()))
        table = table.drop_columns(["frame_index", "timestamp"])
        record = json.loads(table.schema.metadata[EPISODE_METADATA_KEY])
        record.pop("collected_with", None)  # 1.0 episode records did not carry the settings
        record["columns"] = table.column_names
        meta = {**table.schema.metadata, EPISODE_METADATA_KEY: json.dumps(record).encode()}
        pq.write_table(table.replace_schema_metadata(meta), f, compression="zstd")
    info = json.loads((path / "meta" / "info.json").read_text())
    info.pop("frame_format")
    info["format_version"] = "1.0"
    (path / "meta" / "info.json").write_text(json.dumps(info))
    (path / "README.md").unlink()


def test_collector_resumes_a_1_0_dataset_in_worker_processes(tmp_path):
    out = tmp_path / "old"
    cfg = {"env": "babyai-gotolocal", "out": out, "max_episode_steps": 6, "progress": False}
    main(CollectConfig(episodes=2, vector_mode="sync", **cfg))
    before = [e.frames.copy() for e in open_dataset(out).iter_episodes()]
    _downgrade_to_1_0(out)
    main(CollectConfig(episodes=4, num_envs=2, vector_mode="process", resume=True, **cfg))
    ds = open_dataset(out)
    assert ds.info["format_version"] == "1.0" and ds.info["frame_format"] == "raw" and ds.num_episodes == 4
    import pyarrow.parquet as pq

    for pos in range(4):  # the workers wrote the new episodes in the dataset's 1.0 layout
        assert "timestamp" not in pq.read_schema(ds.file(pos)).names
    for old, ep in zip(before, ds.iter_episodes()):
        np.testing.assert_array_equal(old, ep.frames)


def test_card_features_cover_vector_actions_intent_and_extra_columns(tmp_path):
    rng = np.random.default_rng(1)
    layout = [{"key": "camera", "shape": [2], "offset": 0, "size": 2}, {"key": "attack", "shape": [], "offset": 2, "size": 1}]
    w = DatasetWriter(tmp_path / "d", info={"env": "minerl-treechop", "fps": 20,
                                            "action_space": {"type": "Dict", "layout": layout}})
    n = 6
    w.write_episode(0, rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8), rng.normal(size=(n - 1, 3)),
                    intent=[["chop a tree"]] * n, extra={"embedding": rng.normal(size=(n, 4))},
                    annotations=[[] for _ in range(n)])
    w.finalize()
    hf = datasets.load_dataset(str(tmp_path / "d"), cache_dir=str(tmp_path / "cache"))["train"]
    assert hf.features["action"] == datasets.List(datasets.Value("float32"), length=3)
    assert hf.features["embedding"] == datasets.List(datasets.Value("float32"), length=4)
    assert hf[0]["intent"] == ["chop a tree"] and np.asarray(hf[5]["frame"]).shape == (16, 16, 3)
