"""Issue #15 item 5: the narration viewer, checked in a real headless browser (Debian's
chromium; CI installs it, never a browser download): the text shown for a frame equals the data."""
from __future__ import annotations

import html
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import synthetic_dataset, tiny_args

from agents.model import monitors as M
from agents.training.command import cli as train_cli
from agents.view import ViewConfig, build_payload, cli, match_events, render_html

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(not CHROMIUM.is_file(),
                                    reason="Debian's chromium is not installed "
                                           "(apt-get install -y chromium; .ci/run installs it)")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("view")
    data = synthetic_dataset(root / "ds", episodes=6, length=20)
    assert train_cli(tiny_args(data, root / "run", 3)) == 0
    return {"root": root, "data": data, "run": root / "run"}


def test_match_events_pairs_like_event_prf():
    pred = [[], ["cow in view"], [], ["zombie in view"], []]
    true = [["cow in view"], [], [], [], ["collected 1 wood"]]
    p_hit, t_hit = match_events(pred, true, tolerance=1)
    assert p_hit == [[], [True], [], [False], []]
    assert t_hit == [[True], [], [], [], [False]]
    prf = M.event_prf(pred, true, tolerance=1)
    assert prf["tp"] == sum(map(sum, p_hit)) == sum(map(sum, t_hit)) == 1
    assert match_events(pred, true, tolerance=0)[0][1] == [False]  # one frame off, no slack


def test_payload_holds_the_data_and_the_agent_narration(run):
    from agents.training.loading import load_agent
    from collect.dataset import open_dataset

    payload = build_payload(ViewConfig(source=str(run["run"]), forecast=2, bucket=5))
    agent = load_agent(run["run"])
    val = agent.metadata["episodes"]["val"]
    assert [e["position"] for e in payload["episodes"]] == val[:3]
    ds = open_dataset(run["data"])
    e0 = payload["episodes"][0]
    ep = ds.episode(e0["position"])
    assert e0["truth"] == ep.annotations and e0["shown"] == ep.length == len(e0["frames"])
    # while the episode fits the training window, live narration is offline narration
    assert e0["narration"][:8] == agent.describe(ep.frames[:8])
    assert all(len(f) == 2 for f in e0["forecast"])
    assert len(e0["monitors"]["nil_rate"]) == 4  # 20 frames / 5 per point
    assert payload["has_agent"]


def test_page_is_self_contained_and_bounded(run, tmp_path):
    payload = build_payload(ViewConfig(source=str(run["run"]), max_frames=25, split="all",
                                       episodes=3))
    assert [e["shown"] for e in payload["episodes"]] == [20, 5]
    page = render_html(payload)
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)  # nothing fetched
    assert "<script src" not in page and "<link" not in page
    assert len(page) < 25 * 4000 + 60000  # frames are the bulk: bounded by --max-frames
    # a dataset alone: annotations only, no narration
    assert cli([str(run["data"]), "--out", str(tmp_path / "ds.html"), "--episodes", "1"]) == 0
    assert (tmp_path / "ds.html").stat().st_size > 1000


def test_bad_source_is_one_error_line(tmp_path, capsys):
    assert cli([str(tmp_path / "nothing"), "--out", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "does not exist" in err[0]
    assert cli([str(tmp_path), "--out", str(tmp_path / "x.html"), "--max-frames", "0"]) == 2
    assert not (tmp_path / "x.html").exists()


def _chromium(url: str, profile: Path, *extra: str) -> str:
    proc = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={profile}", *extra, url],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _shown(dom: str, list_id: str) -> list[tuple[str, str]]:
    m = re.search(rf'<ul id="{list_id}">(.*?)</ul>', dom, re.DOTALL)
    assert m, list_id
    items = [(c, html.unescape(t)) for c, t in re.findall(r'<li class="(\w+)">(.*?)</li>', m.group(1))]
    return [] if items == [("none", "—")] else items


@pytest.mark.slow
@needs_chromium
def test_browser_shows_each_frames_data(run, tmp_path):
    out = tmp_path / "page.html"
    assert cli([str(run["run"]), "--out", str(out), "--forecast", "2"]) == 0
    data = json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>',
                                out.read_text(), re.DOTALL).group(1).replace("<\\/", "</"))
    last = data["episodes"][1]["shown"] - 1
    for ep, f in ((0, 0), (0, 3), (0, 7), (1, last)):  # stepping through frames by URL
        dom = _chromium(f"file://{out}#ep={ep}&f={f}", tmp_path / f"profile{ep}{f}", "--dump-dom")
        E = data["episodes"][ep]
        assert f'data-f="{f}"' in dom and f'data-ep="{ep}"' in dom  # the page's script ran
        assert _shown(dom, "truth") == [("hit" if h else "miss", s)
                                        for s, h in zip(E["truth"][f], E["truth_hit"][f])]
        assert _shown(dom, "narration") == [("hit" if h else "fp", s) for s, h in
                                            zip(E["narration"][f], E["narration_hit"][f])]
        assert [s for _, s in _shown(dom, "forecast")] == E["forecast"][f]
        assert f"frame {f} / {E['shown'] - 1}" in dom
        assert len(re.findall(r'<img [^>]*title="frame \d+"', dom)) == E["shown"]  # the strip
    shot = tmp_path / "shot.png"
    _chromium(f"file://{out}#ep=0&f=3", tmp_path / "profile_shot", f"--screenshot={shot}",
              "--window-size=1100,800", "--hide-scrollbars")
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (800, 1100) and img.std() > 10  # something was drawn
