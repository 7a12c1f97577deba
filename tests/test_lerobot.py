"""LeRobot v3.0 export and v3.0/v2.1 import (collect/lerobot.py) against LeRobot's documented
schema: meta/info.json features, meta/episodes, meta/tasks.parquet (pandas index), stats,
multi-episode video files located by from/to timestamps, language_events; AV1 and H.264."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from collect.dataset import open_dataset
from collect.errors import ImporterError
from collect.export import cli as export_cli
from collect.importers.__main__ import cli as import_cli
from collect.lerobot import (
    CAMERA_KEY,
    encode_video,
    import_lerobot,
    language_event_type,
)
from collect.writer import DatasetWriter

ACTIONS = ["noop", "left", "right", "up"]


def _frames(rng, n, h=64, w=64):
    """Smooth frames (video codecs keep them close): a moving bright square on a gradient."""
    base = np.linspace(0, 200, w, dtype=np.float32)[None, :, None].repeat(h, 0).repeat(3, 2)
    out = np.empty((n, h, w, 3), np.uint8)
    for t in range(n):
        f = base.copy()
        y, x = (8 + 3 * t) % (h - 16), int(rng.integers(0, w - 16))
        f[y:y + 16, x:x + 16] = [250, 40, 40]
        out[t] = f
    return out


@pytest.fixture(scope="module")
def byog_src(tmp_path_factory):
    """A 3-episode BYOG dataset with missions, annotations, action names and a terminated and
    two truncated episodes."""
    root = tmp_path_factory.mktemp("src")
    rng = np.random.default_rng(0)
    writer = DatasetWriter(root / "d", info={
        "env": "babyai-gotolocal", "fps": 10, "policy": "random", "action_names": ACTIONS,
        "action_space": {"type": "Discrete", "n": 4, "start": 0}})
    eps = []
    for i, n in enumerate([7, 5, 9]):
        frames = _frames(rng, n)
        actions = rng.integers(0, 4, n - 1)
        rewards = np.r_[0.0, rng.normal(size=n - 1)].astype(np.float32)
        term = np.zeros(n, bool)
        term[-1] = i == 1
        notes = [[f"mission go to box {i}"]] + [["facing wall"] if t % 3 == 0 else [] for t in range(1, n)]
        writer.write_episode(i, frames, actions, rewards=rewards, terminated=term,
                             truncated=~term & (np.arange(n) == n - 1), annotations=notes, seed=i,
                             mission=f"go to box {i % 2}")
        eps.append((frames, actions, rewards, term, notes))
    writer.finalize()
    return root / "d", eps


@pytest.mark.parametrize("vcodec", ["av1", "h264"])
def test_export_round_trips_through_the_importer(byog_src, tmp_path, vcodec):
    src, eps = byog_src
    out = tmp_path / "lr"
    assert export_cli(["lerobot", str(src), "--out", str(out), "--language", "--vcodec", vcodec,
                       "--episodes-per-file", "2"]) == 0
    assert import_cli(["lerobot", str(out), "--out", str(tmp_path / "back")]) == 0
    back = open_dataset(tmp_path / "back")
    assert back.info["action_names"] == ACTIONS and back.info["lerobot_camera"] == CAMERA_KEY
    for (frames, actions, rewards, term, notes), ep in zip(eps, back.iter_episodes()):
        assert ep.frames.shape == frames.shape
        assert np.abs(ep.frames.astype(int) - frames).mean() < 6  # lossy video, close
        np.testing.assert_array_equal(ep.actions, np.r_[actions, -1])
        np.testing.assert_allclose(ep.rewards, rewards)
        np.testing.assert_array_equal(ep.terminated, term)
        assert ep.truncated[-1] == (not term[-1]) and ep.annotations == notes
    assert [back.episode(i).record["mission"] for i in range(3)] == ["go to box 0", "go to box 1", "go to box 0"]
    import av

    with av.open(str(out / f"videos/{CAMERA_KEY}/chunk-000/file-000.mp4")) as box:
        assert box.streams.video[0].codec_context.name in (("libdav1d", "av1") if vcodec == "av1" else ("h264",))


def test_export_follows_the_v3_schema(byog_src, tmp_path):
    src, eps = byog_src
    out = tmp_path / "lr"
    assert export_cli(["lerobot", str(src), "--out", str(out), "--language", "--vcodec", "h264",
                       "--episodes-per-file", "2"]) == 0
    info = json.loads((out / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_episodes"] == 3
    assert info["total_frames"] == sum(len(e[0]) for e in eps) and info["total_tasks"] == 2
    f = info["features"]
    assert f[CAMERA_KEY]["dtype"] == "video" and f[CAMERA_KEY]["shape"] == [64, 64, 3]
    assert f["action"]["names"] == {"discrete": ACTIONS}
    assert f["language_events"] == {"dtype": "language", "shape": [1], "names": None}
    assert {"timestamp", "frame_index", "episode_index", "index", "task_index", "next.reward", "next.done"} <= set(f)
    # Episodes: contiguous global indices; two episodes share the first video file, back to back.
    episodes = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["dataset_from_index"] for e in episodes] == [0, 7, 12]
    assert [e[f"videos/{CAMERA_KEY}/file_index"] for e in episodes] == [0, 0, 1]
    assert episodes[1][f"videos/{CAMERA_KEY}/from_timestamp"] == pytest.approx(0.7)
    assert episodes[1][f"videos/{CAMERA_KEY}/to_timestamp"] == pytest.approx(1.2)
    # Tasks as LeRobot reads them: pandas, task strings in the index.
    import pandas as pd

    tasks = pd.read_parquet(out / "meta/tasks.parquet")
    assert int(tasks.loc["go to box 1"].task_index) == 1
    stats = json.loads((out / "meta/stats.json").read_text())
    assert np.array(stats[CAMERA_KEY]["mean"]).shape == (3, 1, 1) and stats["action"]["count"] == [21]
    assert {"min", "max", "mean", "std", "q01", "q99"} <= set(stats["next.reward"])
    # Rows: the language column has LeRobot's Arrow type; annotations are role user.
    data = pq.read_table(out / "data/chunk-000/file-000.parquet")
    assert data.schema.field("language_events").type == language_event_type()
    row0 = data.column("language_events")[0].as_py()
    assert row0 == [{"role": "user", "content": "mission go to box 0", "style": None, "camera": None,
                     "tool_calls": None}]
    np.testing.assert_allclose(data.column("timestamp").to_numpy()[:7], np.arange(7) / 10, atol=1e-6)
    # The Hugging Face datasets library (which LeRobot loads data files with) reads it.
    datasets = pytest.importorskip("datasets")
    hf = datasets.load_dataset("parquet", data_files=str(out / "data/*/*.parquet"), split="train")
    assert len(hf) == 21 and hf[0]["language_events"][0]["role"] == "user"


def test_narrations_become_assistant_events(byog_src, tmp_path):
    """A narrated dataset (a per-row ``narration`` string-list column) exports narrations with
    role assistant beside the annotations."""
    import shutil

    src, _ = byog_src
    narrated = tmp_path / "narrated"
    shutil.copytree(src, narrated)
    ds = open_dataset(narrated)
    for pos in range(ds.num_episodes):
        f = ds.file(pos)
        table = pq.read_table(f)
        said = pa.array([[f"I see step {t}"] for t in range(table.num_rows)], pa.list_(pa.string()))
        pq.write_table(table.append_column("narration", said).replace_schema_metadata(table.schema.metadata), f)
    out = tmp_path / "lr"
    assert export_cli(["lerobot", str(narrated), "--out", str(out), "--language", "--vcodec", "h264"]) == 0
    events = pq.read_table(out / "data/chunk-000/file-000.parquet").column("language_events")[2].as_py()
    assert [(e["role"], e["content"]) for e in events] == [("assistant", "I see step 2")]


def _v21_fixture(root, rng, *, n_eps=2, cams=("observation.images.top", "observation.images.wrist")):
    """A LeRobot v2.1 dataset: one parquet and one H.264 mp4 per episode and camera, float
    6-D actions with joint names, tasks.jsonl / episodes.jsonl."""
    names = ["shoulder", "elbow", "wrist_flex", "wrist_roll", "gripper", "base"]
    feats = {c: {"dtype": "video", "shape": [64, 64, 3], "names": ["height", "width", "channels"]} for c in cams}
    feats.update({"action": {"dtype": "float32", "shape": [6], "names": {"motors": names}},
                  "timestamp": {"dtype": "float32", "shape": [1], "names": None},
                  "frame_index": {"dtype": "int64", "shape": [1], "names": None},
                  "episode_index": {"dtype": "int64", "shape": [1], "names": None},
                  "index": {"dtype": "int64", "shape": [1], "names": None},
                  "task_index": {"dtype": "int64", "shape": [1], "names": None}})
    info = {"codebase_version": "v2.1", "fps": 15, "chunks_size": 1000, "features": feats,
            "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
            "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"}
    (root / "meta").mkdir(parents=True)
    (root / "meta/info.json").write_text(json.dumps(info))
    (root / "meta/tasks.jsonl").write_text(json.dumps({"task_index": 0, "task": "pick the cube"}) + "\n")
    truth = []
    lines = []
    for e in range(n_eps):
        n = 6 + e
        acts = rng.normal(size=(n, 6)).astype(np.float32)
        table = pa.table({
            "action": pa.FixedSizeListArray.from_arrays(pa.array(acts.ravel()), 6),
            "timestamp": pa.array(np.arange(n, dtype=np.float32) / 15), "frame_index": pa.array(np.arange(n)),
            "episode_index": pa.array(np.full(n, e)), "index": pa.array(np.arange(n)),
            "task_index": pa.array(np.zeros(n, np.int64))})
        path = root / info["data_path"].format(episode_chunk=0, episode_index=e)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        per_cam = {}
        for c in cams:
            frames = _frames(rng, n)
            encode_video(root / info["video_path"].format(episode_chunk=0, video_key=c, episode_index=e),
                         iter(frames), 15, "h264")
            per_cam[c] = frames
        lines.append(json.dumps({"episode_index": e, "tasks": ["pick the cube"], "length": n}))
        truth.append((acts, per_cam))
    (root / "meta/episodes.jsonl").write_text("\n".join(lines) + "\n")
    return names, truth


def test_import_v21_vector_actions_and_camera_choice(tmp_path):
    rng = np.random.default_rng(1)
    names, truth = _v21_fixture(tmp_path / "v21", rng)
    with pytest.raises(ImporterError, match="several cameras .* --camera"):
        import_lerobot(tmp_path / "v21", tmp_path / "x")
    assert import_cli(["lerobot", str(tmp_path / "v21"), "--out", str(tmp_path / "b"),
                       "--camera", "observation.images.wrist", "--size", "32", "32"]) == 0
    back = open_dataset(tmp_path / "b")
    assert back.info["action_names"] == names and back.info["frame_shape"] == [32, 32, 3]
    assert back.info["action_space"]["layout"][0]["size"] == 6
    for (acts, per_cam), ep in zip(truth, back.iter_episodes()):
        np.testing.assert_allclose(ep.actions[:-1], acts[:-1], rtol=1e-6)
        assert np.isnan(ep.actions[-1]).all() and ep.record["mission"] == "pick the cube"
        import cv2

        small = np.stack([cv2.resize(f, (32, 32), interpolation=cv2.INTER_AREA) for f in per_cam["observation.images.wrist"]])
        assert np.abs(ep.frames.astype(int) - small).mean() < 6
    assert import_cli(["lerobot", str(tmp_path / "v21"), "--out", str(tmp_path / "c"), "--camera", "nope"]) == 2


def test_import_errors_are_one_line(tmp_path, capsys):
    assert import_cli(["lerobot", str(tmp_path), "--out", str(tmp_path / "o")]) == 2  # usage: a bad source (byog_core.cli)
    assert "is not a LeRobot dataset" in capsys.readouterr().err
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta/info.json").write_text(json.dumps({"codebase_version": "v1.6", "features": {}}))
    assert import_cli(["lerobot", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "reads v3.0 and v2.1" in capsys.readouterr().err


def test_vector_actions_round_trip_with_their_names(tmp_path):
    """An imported robot dataset (6-D float actions with joint names) exports to LeRobot again
    with the names and the same actions."""
    rng = np.random.default_rng(2)
    names, truth = _v21_fixture(tmp_path / "v21", rng, n_eps=2, cams=("observation.images.top",))
    assert import_cli(["lerobot", str(tmp_path / "v21"), "--out", str(tmp_path / "b")]) == 0
    assert export_cli(["lerobot", str(tmp_path / "b"), "--out", str(tmp_path / "lr"), "--vcodec", "h264"]) == 0
    info = json.loads((tmp_path / "lr/meta/info.json").read_text())
    assert info["features"]["action"] == {"dtype": "float32", "shape": [6], "names": names}
    assert import_cli(["lerobot", str(tmp_path / "lr"), "--out", str(tmp_path / "c")]) == 0
    for (acts, _), ep in zip(truth, open_dataset(tmp_path / "c").iter_episodes()):
        np.testing.assert_allclose(ep.actions[:-1], acts[:-1], rtol=1e-6)


def test_import_v3_image_features(tmp_path):
    """v3.0 datasets may store a camera as an ``image`` feature: PNG structs {bytes, path} in the
    data parquet (no video); also no language or reward columns."""
    import cv2
    import pandas as pd

    rng = np.random.default_rng(3)
    root = tmp_path / "img"
    frames = _frames(rng, 5, 32, 48)
    pngs = [cv2.imencode(".png", f[..., ::-1])[1].tobytes() for f in frames]
    image = pa.StructArray.from_arrays([pa.array(pngs, pa.binary()), pa.nulls(5, pa.string())], ["bytes", "path"])
    data = pa.table({"observation.image": image, "action": pa.array(np.arange(5, dtype=np.int64) % 3),
                     "timestamp": pa.array(np.arange(5, dtype=np.float32) / 10),
                     "frame_index": pa.array(np.arange(5)), "episode_index": pa.array(np.zeros(5, np.int64)),
                     "index": pa.array(np.arange(5)), "task_index": pa.array(np.zeros(5, np.int64))})
    (root / "data/chunk-000").mkdir(parents=True)
    pq.write_table(data, root / "data/chunk-000/file-000.parquet")
    (root / "meta/episodes/chunk-000").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{"episode_index": 0, "tasks": ["push"], "length": 5,
                                          "data/chunk_index": 0, "data/file_index": 0,
                                          "dataset_from_index": 0, "dataset_to_index": 5}]),
                   root / "meta/episodes/chunk-000/file-000.parquet")
    pd.DataFrame({"task_index": [0]}, index=pd.Index(["push"], name="task")).to_parquet(root / "meta/tasks.parquet")
    feats = {"observation.image": {"dtype": "image", "shape": [32, 48, 3], "names": None},
             "action": {"dtype": "int64", "shape": [1], "names": None}}
    (root / "meta/info.json").write_text(json.dumps({
        "codebase_version": "v3.0", "fps": 10, "features": feats,
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"}))
    info = import_lerobot(root, tmp_path / "out")
    assert info["frame_shape"] == [32, 48, 3] and info["action_space"]["n"] == 3  # from the data
    ep = open_dataset(tmp_path / "out").episode(0)
    np.testing.assert_array_equal(ep.frames, frames)  # PNG is lossless
    np.testing.assert_array_equal(ep.actions, [0, 1, 2, 0, -1])
    assert ep.record["mission"] == "push" and not ep.terminated.any() and ep.truncated[-1]
