"""Importers (VPT, MineRL v0.4, Minari) and exporters (Minari raw frames, mp4) on crafted files."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from collect.dataset import open_dataset
from collect.importers import ImporterError, import_minari, import_minerl, import_vpt
from collect.importers.__main__ import cli as import_cli
from collect.importers.vpt import CAMERA_SCALER, json_action_to_env_action
from collect.writer import DatasetWriter, unflatten_action

COLORS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200),
          (200, 30, 200), (120, 120, 120)]


def write_mp4(path, colors, size=(48, 64)):
    """A few-frame mp4 of solid RGB colours (near-lossless, so colours survive decoding)."""
    import av

    h, w = size
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=20)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv444p"
        stream.options = {"crf": "0"}
        for c in colors:
            img = np.zeros((h, w, 3), np.uint8) + np.array(c, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def vpt_record(keys=(), dx=0.0, dy=0.0, buttons=(), new_buttons=(), hotbar=0, inventory=(), stats=None):
    return {
        "mouse": {"x": 320.0, "y": 180.0, "dx": dx, "dy": dy, "scaledX": 0.0, "scaledY": 0.0,
                  "dwheel": 0.0, "buttons": list(buttons), "newButtons": list(new_buttons)},
        "keyboard": {"keys": list(keys), "newKeys": [], "chars": ""},
        "isGuiOpen": False, "isGuiInventory": False, "hotbar": hotbar, "yaw": 0.0, "pitch": 0.0,
        "xpos": 0.0, "ypos": 64.0, "zpos": 0.0, "tick": 0, "milli": 0, "serverTick": 0,
        "serverTickDurationMs": 50.0,
        "inventory": [{"type": t, "quantity": q} for t, q in inventory], "stats": stats or {},
    }


@pytest.fixture()
def vpt_dir(tmp_path):
    src = tmp_path / "vpt"
    src.mkdir()
    log = [("minecraft:oak_log", 1)]
    records = [
        vpt_record(keys=["key.keyboard.w"], buttons=[0], new_buttons=[0]),  # attack stuck from start
        vpt_record(),                                                          # null: dropped
        vpt_record(dx=240.0, dy=-120.0),                                       # camera only
        vpt_record(buttons=[0], new_buttons=[0], inventory=log,                # real attack, log mined
                   stats={"minecraft.mine_block:minecraft.oak_log": 1}),
        vpt_record(keys=["key.keyboard.space"], hotbar=2, inventory=log,
                   stats={"minecraft.mine_block:minecraft.oak_log": 1}),
        vpt_record(keys=["key.keyboard.left.shift", "key.keyboard.x"], hotbar=2, inventory=log,
                   stats={"minecraft.mine_block:minecraft.oak_log": 1}),
    ]
    (src / "player-1.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    write_mp4(src / "player-1.mp4", COLORS[: len(records)])
    return src


def test_vpt_action_conversion_values():
    action, null = json_action_to_env_action(vpt_record(keys=["key.keyboard.w", "key.keyboard.9"],
                                                        dx=24.0, dy=-8.0, buttons=[1, 2]))
    assert not null
    assert action["forward"] == 1 and action["hotbar.9"] == 1 and action["back"] == 0
    assert action["use"] == 1 and action["pickItem"] == 1 and action["attack"] == 0
    np.testing.assert_allclose(action["camera"], [-8 * 0.15, 24 * 0.15])
    assert CAMERA_SCALER == pytest.approx(0.15)
    _, null = json_action_to_env_action(vpt_record(keys=["key.keyboard.x"]))
    assert null  # unmapped keys only: a null action


def test_import_vpt_drops_null_frames_and_annotates(vpt_dir, tmp_path):
    info = import_vpt(vpt_dir, tmp_path / "ds", size=(16, 24))
    assert info["num_episodes"] == 1 and info["frame_shape"] == [16, 24, 3]
    ds = open_dataset(tmp_path / "ds")
    ep = ds.episode(0)
    assert ep.frames.shape == (5, 16, 24, 3) and ep.record["num_null_dropped"] == 1
    # Kept frames are records 0, 2, 3, 4, 5: their colours prove video and jsonl stay in sync.
    means = ep.frames.reshape(5, -1, 3).mean(axis=1)
    np.testing.assert_allclose(means, np.array(COLORS)[[0, 2, 3, 4, 5]], atol=3)
    layout = action_layout_from_info(ds.info)
    acts = [unflatten_action(a, layout) for a in ep.actions]
    assert acts[0]["forward"] == 1 and acts[0]["attack"] == 0  # stuck attack released
    np.testing.assert_allclose(acts[1]["camera"], [-18.0, 36.0])
    assert acts[2]["attack"] == 1
    assert acts[3]["jump"] == 1 and acts[3]["hotbar.3"] == 1  # hotbar 0 -> 2 is a hotbar.3 press
    assert acts[4]["sneak"] == 1 and sum(v for k, v in acts[4].items() if k != "camera") == 1
    assert ep.annotations[0] == [] and ep.annotations[1] == []
    assert "mined oak log" in ep.annotations[2] and "collected 1 oak log" in ep.annotations[2]
    assert ep.annotations[3] == [] and ep.annotations[4] == []


def test_import_vpt_keep_null_and_cli(vpt_dir, tmp_path, capsys):
    assert import_cli(["vpt", str(vpt_dir), "--out", str(tmp_path / "all"), "--keep-null"]) == 0
    assert open_dataset(tmp_path / "all").episode(0).length == 6
    assert "imported 1 episodes" in capsys.readouterr().out
    assert import_cli(["vpt", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 2  # usage: a bad source path (byog_core.cli)
    err = capsys.readouterr().err
    assert err.startswith("error: VPT source") and "Traceback" not in err


def test_import_vpt_bad_jsonl(vpt_dir, tmp_path):
    (vpt_dir / "player-1.jsonl").write_text('{"mouse": {}}\n{not json\n')
    with pytest.raises(ImporterError, match=r"player-1.jsonl:2 is not valid JSON"):
        import_vpt(vpt_dir, tmp_path / "ds")


def test_import_vpt_corrupt_video(vpt_dir, tmp_path):
    (vpt_dir / "player-1.mp4").write_bytes(b"\x00" * 64)
    with pytest.raises(ImporterError, match="no decodable frames|Cannot open video"):
        import_vpt(vpt_dir, tmp_path / "ds")


def action_layout_from_info(info):
    return info["action_space"]["layout"]


@pytest.fixture()
def minerl_dir(tmp_path):
    traj = tmp_path / "MineRLTreechop-v0" / "v3_test_traj"
    traj.mkdir(parents=True)
    np.savez(
        traj / "rendered.npz",
        **{
            "action$forward": np.array([0, 1, 1, 0]),
            "action$camera": np.array([[0, 0], [1.5, -2.0], [0, 0], [0, 0]], np.float32),
            "action$place": np.array(["none", "dirt", "none", "none"]),
            "observation$inventory$log": np.array([0, 0, 1, 1, 2]),
            "observation$inventory$dirt": np.array([5, 5, 4, 4, 4]),
            "observation$equipped_items$mainhand$type": np.array(
                ["none", "none", "none", "wooden_pickaxe", "wooden_pickaxe"]),
            "reward": np.array([0.0, 0.0, 1.0, 0.0]),
        },
    )
    (traj / "metadata.json").write_text(json.dumps({"success": True, "duration_steps": 4}))
    write_mp4(traj / "recording.mp4", COLORS[:5], size=(64, 64))
    return tmp_path / "MineRLTreechop-v0"


def test_import_minerl(minerl_dir, tmp_path):
    info = import_minerl(minerl_dir, tmp_path / "ds")
    assert info["action_enums"] == {"place": ["none", "dirt"]}
    ep = open_dataset(tmp_path / "ds").episode(0)
    assert ep.frames.shape == (5, 64, 64, 3)
    layout = info["action_space"]["layout"]
    acts = [unflatten_action(a, layout) for a in ep.actions[:4]]
    assert [a["forward"] for a in acts] == [0, 1, 1, 0]
    assert [a["place"] for a in acts] == [0, 1, 0, 0]
    np.testing.assert_allclose(acts[1]["camera"], [1.5, -2.0])
    assert np.isnan(ep.actions[4]).all()  # one more state than actions
    np.testing.assert_array_equal(ep.rewards, [0, 0, 0, 1, 0])  # reward of action 2 arrives at row 3
    assert ep.terminated.tolist() == [False] * 4 + [True] and ep.record["success"] is True
    assert "collected 1 log" in ep.annotations[2] and "lost 1 dirt" in ep.annotations[2]
    assert "equipped wooden pickaxe" in ep.annotations[3]
    assert ep.annotations[4] == ["collected 1 log"]


def test_import_minerl_missing_npz(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImporterError, match="No MineRL trajectories"):
        import_minerl(tmp_path / "empty", tmp_path / "ds")


@pytest.fixture()
def byog_dataset(tmp_path):
    rng = np.random.default_rng(0)
    writer = DatasetWriter(tmp_path / "src", info={
        "env": "crafter", "fps": 10, "policy": "random",
        "action_space": {"type": "Discrete", "n": 17, "start": 0},
    })
    episodes = []
    for i, n in enumerate([6, 4]):
        frames = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
        actions = rng.integers(0, 17, n - 1)
        rewards = np.r_[0.0, rng.normal(size=n - 1)].astype(np.float32)
        notes = [[f"collected {t + 1} wood"] if t % 2 else [] for t in range(n)]
        term = np.zeros(n, bool)
        term[-1] = i == 0
        writer.write_episode(i, frames, actions, rewards=rewards, terminated=term,
                             truncated=~term & (np.arange(n) == n - 1), annotations=notes, seed=10 + i)
        episodes.append((frames, actions, rewards, notes, term))
    writer.finalize()
    return tmp_path / "src", episodes


def test_minari_export_raw_frames_and_round_trip(byog_dataset, tmp_path):
    import minari

    from collect.export import cli as export_cli

    src, episodes = byog_dataset
    assert export_cli(["minari", str(src), "--out", str(tmp_path / "mn")]) == 0
    md = minari.MinariDataset(tmp_path / "mn" / "data")
    assert md.storage.metadata["jpeg_encoding"] is False and md.total_episodes == 2
    for (frames, actions, rewards, _, term), episode in zip(episodes, md.iterate_episodes()):
        np.testing.assert_array_equal(episode.observations, frames)  # bit-exact, not JPEG
        np.testing.assert_array_equal(episode.actions, actions)
        np.testing.assert_allclose(episode.rewards, rewards[1:])
        np.testing.assert_array_equal(episode.terminations, term[1:])
    info = import_minari(tmp_path / "mn", tmp_path / "back")
    assert info["num_episodes"] == 2
    back = open_dataset(tmp_path / "back")
    for (frames, actions, rewards, notes, term), ep in zip(episodes, back.iter_episodes()):
        np.testing.assert_array_equal(ep.frames, frames)
        np.testing.assert_array_equal(ep.actions, np.r_[actions, -1])
        np.testing.assert_allclose(ep.rewards, rewards)
        np.testing.assert_array_equal(ep.terminated, term)
        assert ep.annotations == notes
    assert [r["seed"] for r in (back.episode(i).record for i in range(2))] == [10, 11]


def test_minari_import_errors(tmp_path):
    import gymnasium as gym
    from minari.dataset.minari_storage import MinariStorage

    with pytest.raises(ImporterError, match="neither a Minari dataset directory"):
        import_minari(tmp_path / "nothing", tmp_path / "out")
    (tmp_path / "vec").mkdir()
    storage = MinariStorage.new(tmp_path / "vec" / "data", observation_space=gym.spaces.Box(-1, 1, (4,)),
                                action_space=gym.spaces.Discrete(2), data_format="arrow")
    storage.update_metadata({"dataset_id": "test/vec-v0", "minari_version": "0.4.3"})
    with pytest.raises(ImporterError, match="holds no RGB frames"):
        import_minari(tmp_path / "vec", tmp_path / "out")


def test_mp4_export(byog_dataset, tmp_path, capsys):
    from collect.export import cli as export_cli

    src, episodes = byog_dataset
    assert export_cli(["mp4", str(src), "--out", str(tmp_path / "mp4"), "--scale", "8"]) == 0
    files = sorted((tmp_path / "mp4").glob("*.mp4"))
    assert [f.name for f in files] == ["episode_000000.mp4", "episode_000001.mp4"]
    cap = cv2.VideoCapture(str(files[0]))
    count = 0
    while cap.read()[0]:
        count += 1
    assert count == len(episodes[0][0])
    assert export_cli(["mp4", str(src), "--out", str(tmp_path / "x"), "--episodes", "5"]) == 2
    assert "out of range" in capsys.readouterr().err


def test_importing_into_an_existing_dataset_does_not_suggest_a_resume_flag(vpt_dir, tmp_path, capsys):
    """Importers have no --resume; their refusal names the directory and a fix they support."""
    out = tmp_path / "ds"
    assert import_cli(["vpt", str(vpt_dir), "--out", str(out)]) == 0
    capsys.readouterr()
    before = sorted((p, p.stat().st_mtime_ns) for p in out.rglob("*"))
    assert import_cli(["vpt", str(vpt_dir), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and str(out) in err
    assert "--resume" not in err and "choose another output directory" in err
    assert sorted((p, p.stat().st_mtime_ns) for p in out.rglob("*")) == before


def test_a_format_is_one_plugin_file(tmp_path, capsys):
    """tests/plugins/toy_format.py registers an npz exporter and importer; both command lines
    run them with --plugin, and the round trip keeps frames, actions and annotations."""
    import numpy as np

    from collect.config import CollectConfig
    from collect.dataset import open_dataset
    from collect.export import cli as export_cli
    from collect.importers.__main__ import cli as import_cli
    from collect.rollout import collect_dataset

    src = tmp_path / "src"
    collect_dataset(CollectConfig(env="crafter", episodes=2, max_episode_steps=6, out=src, progress=False))
    assert export_cli(["--plugin", "plugins.toy_format", "npz", str(src), "--out", str(tmp_path / "npz")]) == 0
    assert "wrote 2 npz files" in capsys.readouterr().out
    assert import_cli(["--plugin=plugins.toy_format", "npz", str(tmp_path / "npz"), "--out", str(tmp_path / "back")]) == 0
    a, b = open_dataset(src), open_dataset(tmp_path / "back")
    for i in range(2):
        ea, eb = a.episode(i), b.episode(i)
        assert np.array_equal(ea.frames, eb.frames) and np.array_equal(ea.actions, eb.actions)
        assert ea.annotations == eb.annotations
    assert export_cli(["--plugin", "no_such_module_xyz", "npz", str(src), "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.startswith("error: --plugin module 'no_such_module_xyz' cannot be imported")
