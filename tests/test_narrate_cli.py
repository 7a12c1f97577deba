"""Smoke and error tests of ``python -m agents.narrate`` on live Crafter with a tiny agent."""
import json

import numpy as np
import pytest
import torch

from agents.config import make_model_config
from agents.model.agent import BYOGAgent
from agents.model.text import train_tokenizer
from agents.narrate.command import cli
from agents.narrate.narration import load_narrating_agent
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
    rc = cli(["--checkpoint", str(checkpoint), "--word-share", "0", "--out", str(tmp_path)])
    assert rc == 2 and "--word-share must be in (0, 1]" in capsys.readouterr().err
    rc = cli(["--checkpoint", str(checkpoint), "--sentence-share", "1.5", "--out", str(tmp_path)])
    assert rc == 2 and "--sentence-share must be in (0, 1]" in capsys.readouterr().err


# --------------------------------------------------------------------------- live vs offline


SENT = ["collected 1 wood", "tree in view", "cow in view"]


def synthetic_logs(tok, lag, n_eps=3, T=40, quiet_from=None):
    """Episodes whose annotations are known events and whose narration says each event
    ``lag`` frames after it (slots written by slot_annotations); no event from ``quiet_from``."""
    from agents.config import SlotConfig
    from agents.model.text import slot_annotations
    from agents.narrate.episodes import EpisodeLog

    rng = np.random.default_rng(0)
    logs = []
    for _ in range(n_eps):
        ann = [[] for _ in range(T)]
        for t in range(0, (quiet_from or T) - lag, 10):  # 10 apart: the nearest is the one
            ann[t] = [SENT[int(rng.integers(len(SENT)))]]
        said = [[] for _ in range(lag)] + ann[:T - lag]
        ids = slot_annotations([said], torch.ones(1, T, dtype=torch.bool), tok,
                               SlotConfig(tokens_per_frame=4)).ids[0]
        logs.append(EpisodeLog(frames=[np.zeros((8, 8, 3), np.uint8)] * T, ids=list(ids.numpy()),
                               entropy=[1.0] * T, annotations=ann, narration=[""] * T, annotated=True))
    return logs


def test_a_narrator_with_a_known_lag_reports_that_lag(tmp_path):
    """Live narration 3 frames late, offline on time: the summary reads lag 3 live, 0 offline."""
    from agents.narrate.config import NarrateConfig
    from agents.narrate.scoring import summarize

    tok = train_tokenizer(SENT)
    cfg = NarrateConfig(checkpoint="x", steps=39, tolerance=1, bucket=20, out=tmp_path)
    live = synthetic_logs(tok, lag=3)
    on_time = [np.stack(lg.ids) for lg in synthetic_logs(tok, lag=0)]
    s = summarize(cfg, live, tok, 1.0, True, offline=(on_time, {"cut_tokens": 0, "ill_formed_slots": 0}, 16))
    assert s["lag"]["abs_p50"] == 3 and s["lag"]["abs_p90"] == 3 and s["lag"]["signed_p50"] == 3
    assert s["lag"]["paired_share"] == 1.0
    assert s["offline/lag"]["abs_p50"] == 0 and s["offline/events"]["f1"] == 1.0
    assert s["events"]["f1"] == 0.0  # 3 frames late is outside the 1-frame tolerance
    assert s["live_minus_offline/f1"] == -1.0
    lo, hi = s["events"]["f1_ci"]
    assert lo <= s["events"]["f1"] <= hi
    assert all(b["lag/abs_p50"] == 3 and b["offline/lag/abs_p50"] == 0 for b in s["buckets"])


def falling_behind_logs(tok, late_from, n_eps=4, T=60):
    """Episodes with an event every 10 frames, narrated on time until ``late_from`` and 3 frames
    late after it (None: on time throughout)."""
    from agents.config import SlotConfig
    from agents.model.text import slot_annotations
    from agents.narrate.episodes import EpisodeLog

    rng = np.random.default_rng(1)
    logs = []
    for _ in range(n_eps):
        ann = [[SENT[int(rng.integers(len(SENT)))]] if t % 10 == 0 else [] for t in range(T)]
        said = [[] for _ in range(T)]
        for t in range(0, T, 10):
            lag = 3 if late_from is not None and t >= late_from else 0
            if t + lag < T:
                said[t + lag] = ann[t]
        ids = slot_annotations([said], torch.ones(1, T, dtype=torch.bool), tok,
                               SlotConfig(tokens_per_frame=4)).ids[0]
        logs.append(EpisodeLog(frames=[np.zeros((8, 8, 3), np.uint8)] * T, ids=list(ids.numpy()),
                               entropy=[1.0] * T, annotations=ann, narration=[""] * T, annotated=True))
    return logs


@pytest.mark.parametrize("late_from, falls", [(30, True), (None, False)])
def test_drift_sees_a_narrator_that_falls_behind(tmp_path, late_from, falls):
    """The drift's controls: live narration that falls 3 frames behind after frame 30 (offline on
    time) reads a change of -1 with an interval below 0; live = offline reads 0."""
    from agents.narrate.config import NarrateConfig
    from agents.narrate.scoring import summarize

    tok = train_tokenizer(SENT)
    cfg = NarrateConfig(checkpoint="x", steps=59, tolerance=1, bucket=20, drift=20, out=tmp_path)
    on_time = [np.stack(lg.ids) for lg in falling_behind_logs(tok, None)]
    s = summarize(cfg, falling_behind_logs(tok, late_from), tok, 1.0, True,
                  offline=(on_time, {"cut_tokens": 0, "ill_formed_slots": 0}, 16))
    d = s["drift"]
    assert d["episodes"] == 4 and d["early_steps"] == [0, 20] and d["late_steps"] == [39, 59]
    lo, hi = d["f1_change_ci"]
    if falls:
        assert d["f1_change"] == -1.0 and hi < 0 and d["live/early_f1"] == 1.0
    else:
        assert d["f1_change"] == 0.0 and lo == hi == 0.0


def test_lag_by_kind_shows_which_kind_is_late(tmp_path):
    """Objects entering the view narrated 3 frames late, everything else on time: the per-kind
    lags say so (see: 3, collect: 0) while the pooled p50 hides it, and the table prints them."""
    from io import StringIO

    from rich.console import Console

    from agents.config import SlotConfig
    from agents.model.text import slot_annotations
    from agents.narrate.config import NarrateConfig
    from agents.narrate.episodes import EpisodeLog
    from agents.narrate.scoring import summarize
    from agents.narrate.summary import print_summary

    tok = train_tokenizer(SENT)
    T = 60
    ann = [[] for _ in range(T)]
    said = [[] for _ in range(T)]
    for t in range(0, T - 4, 6):
        ann[t] = ["collected 1 wood"] + (["cow in view"] if t % 12 == 0 else [])
        said[t].append("collected 1 wood")
        if t % 12 == 0:
            said[t + 3].append("cow in view")
    ids = slot_annotations([said], torch.ones(1, T, dtype=torch.bool), tok,
                           SlotConfig(tokens_per_frame=4)).ids[0]
    log = EpisodeLog(frames=[np.zeros((8, 8, 3), np.uint8)] * T, ids=list(ids.numpy()),
                     entropy=[1.0] * T, annotations=ann, narration=[""] * T, annotated=True)
    cfg = NarrateConfig(checkpoint="x", steps=T, tolerance=1, bucket=30, out=tmp_path)
    s = summarize(cfg, [log], tok, 1.0, True)
    by = s["lag"]["by_kind"]
    assert by["see"]["abs_p50"] == 3 and by["see"]["abs_p90"] == 3 and by["see"]["paired_share"] == 1.0
    assert by["collect"]["abs_p90"] == 0 and by["collect"]["narrated"] == 10
    assert s["lag"]["abs_p50"] == 0  # pooled: the late kind is the minority
    buf = StringIO()
    print_summary(s, Console(file=buf, width=200))
    table = buf.getvalue()
    assert "|lag| by event kind" in table and "see" in table and "collect" in table


def test_summary_with_an_empty_bucket_prints_a_dash(tmp_path):
    """A bucket without true events has no F1 (None in summary.json): the table prints "–"
    instead of crashing, and the plot is written."""
    from io import StringIO

    from rich.console import Console

    from agents.narrate.config import NarrateConfig
    from agents.narrate.scoring import summarize
    from agents.narrate.summary import EMPTY, _finite, plot_over_time, print_summary

    tok = train_tokenizer(SENT)
    cfg = NarrateConfig(checkpoint="x", steps=39, bucket=10, out=tmp_path)
    logs = synthetic_logs(tok, lag=0, quiet_from=20)
    ids = [np.stack(lg.ids) for lg in logs]
    s = _finite(summarize(cfg, logs, tok, 1.0, True, offline=(ids, {"cut_tokens": 0, "ill_formed_slots": 0}, 16)))
    assert s["buckets"][3]["events/f1"] is None and s["buckets"][3]["lag/abs_p50"] is None
    out = StringIO()
    print_summary(s, Console(file=out, width=250))
    rows = [r for r in out.getvalue().splitlines() if r.strip().startswith("│ 30-")]
    assert len(rows) == 1 and EMPTY in rows[0]
    assert plot_over_time(s, tmp_path / "p.png").stat().st_size > 0


@pytest.mark.slow
def test_cli_reports_live_vs_offline_and_the_slot_counts(checkpoint, tmp_path, capsys):
    out = tmp_path / "narr"
    rc = cli(["--env", "crafter", "--checkpoint", str(checkpoint), "--policy", "crafter-scripted",
              "--steps", "30", "--episodes", "2", "--greedy", "--bucket", "10", "--drift", "10",
              "--no-video", "--quiet", "--threads", "1", "--out", str(out)])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    s = json.loads((out / "summary.json").read_text())
    for arm in ("", "offline/"):
        ev = s[f"{arm}events"]
        assert 0 <= ev["f1"] <= 1 and len(ev["f1_ci"]) == 2
        assert set(s[f"{arm}lag"]) >= {"abs_p50", "abs_p90", "signed_p50", "paired_share"}
        assert set(s[f"{arm}slots" if arm else "slots"]) >= {"cut_tokens", "ill_formed_slots"}
    assert s["offline/window"] == 16  # the training window (the default, no metadata here)
    assert abs(s["live_minus_offline/f1"] - (s["events"]["f1"] - s["offline/events"]["f1"])) < 1e-9
    d = s["drift"]
    assert d["early_steps"] == [0, 10] and d["late_steps"] == [20, 30] and d["episodes"] == 2
    assert "offline/narration/nil_rate" in s["buckets"][0]
    assert (out / "narration_over_time.png").stat().st_size > 0
    assert "live − offline" in printed.out and "Drift" in printed.out


@pytest.mark.slow
def test_the_word_gate_acts_live_and_offline(checkpoint, tmp_path):
    """``--word-share``: both arms narrate with the gate and count what it silenced (an
    untrained narrator is split between words everywhere: it says almost nothing)."""
    args = ["--env", "crafter", "--checkpoint", str(checkpoint), "--policy", "random",
            "--steps", "20", "--greedy", "--no-video", "--quiet", "--threads", "1"]
    assert cli(args + ["--out", str(tmp_path / "free")]) == 0
    assert cli(args + ["--word-share", "0.9", "--out", str(tmp_path / "gated")]) == 0
    free, gated = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("free", "gated"))
    assert gated["config"]["word_share"] == 0.9 and free["config"]["word_share"] is None
    for arm in ("slots", "offline/slots"):
        assert free[arm]["gated_words"] == 0 < gated[arm]["gated_words"]
    said = [json.loads(line)["narration"] for line in (tmp_path / "gated" / "narration.jsonl").open()]
    before = [json.loads(line)["narration"] for line in (tmp_path / "free" / "narration.jsonl").open()]
    assert sum(map(len, said)) < sum(map(len, before))
    # --sentence-share: the same, whole sentences left unsaid and counted in both arms
    assert cli(args + ["--sentence-share", "0.9", "--out", str(tmp_path / "hushed")]) == 0
    hushed = json.loads((tmp_path / "hushed" / "summary.json").read_text())
    assert hushed["config"]["sentence_share"] == 0.9 and free["config"]["sentence_share"] is None
    for arm in ("slots", "offline/slots"):
        assert free[arm]["hushed_sentences"] == 0 < hushed[arm]["hushed_sentences"]
    lines = [json.loads(x) for x in (tmp_path / "hushed" / "narration.jsonl").open()]
    for now, then in zip(lines, (json.loads(x) for x in (tmp_path / "free" / "narration.jsonl").open())):
        assert set(filter(None, now["narration"].split("; "))) <= set(then["narration"].split("; "))


@pytest.mark.slow
@pytest.mark.parametrize("envs", [1, 2])
def test_the_sentence_gate_sweep_scores_what_each_gate_would_say(checkpoint, tmp_path, capsys,
                                                                  envs):
    """``--sentence-share-sweep``: from one free run, each share's row is the score of a run
    with ``--sentence-share q`` (the same said narration, counts, F1 and lags), in
    summary.json, the CSV and a printed table; single env and two envs in one decode."""
    args = ["--env", "crafter", "--checkpoint", str(checkpoint), "--policy", "random",
            "--steps", "30", "--episodes", "3", "--greedy", "--no-video", "--quiet",
            "--threads", "1", "--no-offline", "--num-envs", str(envs)]
    assert cli(args + ["--sentence-share-sweep", "0.05", "0.9", "--out", str(tmp_path / "sweep")]) == 0
    printed = capsys.readouterr().out
    assert "said at each --sentence-share" in printed
    sweep = json.loads((tmp_path / "sweep" / "summary.json").read_text())["sentence_gate_sweep"]
    assert [r["sentence_share"] for r in sweep] == [0.05, 0.9]
    for row in sweep:
        q = row["sentence_share"]
        assert cli(args + ["--sentence-share", str(q), "--out", str(tmp_path / f"q{q}")]) == 0
        one = json.loads((tmp_path / f"q{q}" / "summary.json").read_text())
        assert row["hushed_sentences"] == one["slots"]["hushed_sentences"]
        for key in ("f1", "precision", "recall"):
            assert row[key] == pytest.approx(one["events"][key])
        assert row["f1_ci"] == pytest.approx(one["events"]["f1_ci"])
        for key in ("abs_p50", "abs_p90"):
            assert row[f"lag_{key}"] == pytest.approx(one["lag"][key], nan_ok=True)
    assert sweep[1]["hushed_sentences"] > sweep[0]["hushed_sentences"]  # a stricter gate says less
    csv_rows = (tmp_path / "sweep" / "sentence_gate_sweep.csv").read_text().splitlines()
    assert csv_rows[0].startswith("sentence_share,f1,") and len(csv_rows) == 3
    assert cli(args + ["--sentence-share-sweep", "0.5", "0", "--out", str(tmp_path / "bad")]) == 2
    assert "--sentence-share-sweep values must be in (0, 1]" in capsys.readouterr().err


@pytest.mark.slow
def test_a_2000_step_episode_is_narrated_with_bounded_context(checkpoint, tmp_path, capsys):
    """Long episodes: 2,000 steps live (the scripted player dies within ~600 steps, so as one
    --stream of episodes, the narrator never reset), per-bucket monitors and the drift."""
    out = tmp_path / "long"
    rc = cli(["--env", "crafter", "--checkpoint", str(checkpoint), "--policy", "crafter-scripted",
              "--steps", "2000", "--episodes", "1", "--greedy", "--bucket", "250", "--stream",
              "--no-video", "--quiet", "--threads", "1", "--out", str(out)])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    s = json.loads((out / "summary.json").read_text())
    assert s["episode_lengths"] == [2001] and s["stream_resets"][0] >= 1
    lines = (out / "narration.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == list(range(2001))
    assert len(s["buckets"]) == 8 and s["buckets"][-1]["start_step"] == 1750  # + frame 2000
    for b in s["buckets"]:
        assert 0 <= b["narration/nil_rate"] <= 1 and 0 <= b["offline/narration/nil_rate"] <= 1
    d = s["drift"]
    assert d["early_steps"] == [0, 500] and d["late_steps"] == [1500, 2000] and d["episodes"] == 1
    assert (out / "narration_over_time.png").stat().st_size > 0


@pytest.mark.slow
def test_a_2000_step_episode_of_the_survivor_is_one_episode(checkpoint, tmp_path, capsys):
    """`crafter-survivor` lives 2,000 steps on seed 0: one real episode, no --stream needed,
    and the drift is measured on it."""
    out = tmp_path / "survivor"
    rc = cli(["--env", "crafter", "--checkpoint", str(checkpoint), "--policy", "crafter-survivor",
              "--steps", "2000", "--episodes", "1", "--greedy", "--bucket", "250", "--no-video",
              "--quiet", "--threads", "1", "--out", str(out)])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    s = json.loads((out / "summary.json").read_text())
    assert s["episode_lengths"] == [2001] and s["stream_resets"] is None
    assert s["drift"]["episodes"] == 1 and len(s["drift"]["f1_change_ci"]) == 2
