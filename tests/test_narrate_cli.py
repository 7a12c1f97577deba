"""Smoke and error tests of ``python -m agents.narrate`` on live Crafter with a tiny agent."""
import json

import numpy as np
import pytest
import torch

from agents.config import make_model_config
from agents.model import BYOGAgent
from agents.narrate import cli
from agents.narration import load_narrating_agent
from agents.text import train_tokenizer
from collect.video import draw_subtitles


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def write_checkpoint(path, frame_shape):
    """A checkpoint in the trainer's layout: agent/ (save_pretrained) + meta.json identity."""
    torch.manual_seed(0)
    tok = train_tokenizer(["collected 1 wood", "tree in view", "cow in view", "health dropped"])
    agent = BYOGAgent(make_model_config("tiny", text={"tokens_per_frame": 4}), tok)
    agent.save_pretrained(path / "agent")
    (path / "meta.json").write_text(json.dumps({"step": 0, "dataset": {
        "env_id": "crafter", "frame_shape": list(frame_shape)}}))
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("ckpt"), (64, 64, 3))


@pytest.mark.slow
def test_cli_writes_jsonl_video_and_summary(checkpoint, tmp_path, capsys):
    out = tmp_path / "narr"
    rc = cli(["--env", "crafter", "--checkpoint", str(checkpoint), "--policy", "random",
              "--steps", "12", "--episodes", "2", "--seed", "1", "--greedy", "--forecast", "1",
              "--bucket", "5", "--out", str(out)])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    lines = [json.loads(s) for s in (out / "narration.jsonl").read_text().splitlines()]
    assert len(lines) == 26  # 2 episodes x (reset frame + 12 steps)
    assert [(d["episode"], d["step"]) for d in lines[:3]] == [(0, 0), (0, 1), (0, 2)]
    assert lines[13]["episode"] == 1 and lines[13]["step"] == 0
    for d in lines:
        assert set(d) == {"episode", "step", "narration", "narration_tokens", "annotations", "forecast"}
        assert isinstance(d["narration"], str) and len(d["narration_tokens"]) == 4
        assert len(d["forecast"]) == 1 and isinstance(d["annotations"], list)
    assert any(d["annotations"] for d in lines)  # crafter annotates (e.g. creatures in view)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 26 and summary["episodes"] == 2
    assert summary["episode_lengths"] == [13, 13]
    ev = summary["events"]
    assert set(ev) >= {"precision", "recall", "f1", "tp", "fp", "fn"}
    n_true = sum(len(d["annotations"]) for d in lines)
    assert ev["tp"] + ev["fn"] == n_true  # every annotation is matched or missed
    assert [b["start_step"] for b in summary["buckets"]] == [0, 5, 10]
    assert [b["episodes"] for b in summary["buckets"]] == [2, 2, 2]
    for b in summary["buckets"]:
        assert {"narration/distinct_1", "narration/distinct_2", "narration/nil_rate",
                "narration/entropy", "events/f1"} <= set(b)
        assert 0 <= b["narration/nil_rate"] <= 1 and b["narration/entropy"] > 0
    assert summary["monitors"]["narration/entropy"] > 0 and summary["narration_fps"] > 0
    assert summary["config"]["forecast"] == 1 and summary["config"]["greedy"] is True
    assert "Agreement with the annotations" in printed.out

    import cv2

    cap = cv2.VideoCapture(str(out / "narration.mp4"))
    n, shape = 0, None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n, shape = n + 1, frame.shape
    cap.release()
    expected = draw_subtitles(np.zeros((64, 64, 3), np.uint8), [], scale=4, band_lines=4).shape
    assert n == 26 and shape == expected


def test_bad_checkpoint_path_is_one_clear_error(tmp_path, capsys):
    rc = cli(["--env", "crafter", "--checkpoint", str(tmp_path / "missing"), "--steps", "2",
              "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "missing' does not exist" in err and "Traceback" not in err
    (tmp_path / "empty").mkdir()
    rc = cli(["--env", "crafter", "--checkpoint", str(tmp_path / "empty"), "--steps", "2",
              "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "Cannot load a narrating agent" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "narration.jsonl").exists()


def test_checkpoint_for_another_frame_size_is_refused(tmp_path, capsys):
    ckpt = write_checkpoint(tmp_path / "small", (32, 32, 3))
    assert load_narrating_agent(ckpt).frame_shape == (32, 32, 3)
    rc = cli(["--env", "crafter", "--checkpoint", str(ckpt), "--steps", "2",
              "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert "trained on 32x32x3 frames but this env gives 64x64x3 frames" in err


def test_bad_option_values_are_refused(checkpoint, tmp_path, capsys):
    rc = cli(["--checkpoint", str(checkpoint), "--steps", "0", "--out", str(tmp_path)])
    assert rc == 2 and "--steps must be >= 1, got 0" in capsys.readouterr().err
    rc = cli(["--checkpoint", str(checkpoint), "--env", "crafterr", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "Unknown environment 'crafterr'" in err and "crafter" in err
