"""Narration viewer: one self-contained HTML page to look at what an agent says.

    python -m agents.view runs/demo --out page.html                 # a run: its validation episodes
    python -m agents.view data/crafter --checkpoint runs/demo --out page.html   # any dataset
    python -m agents.view data/crafter --out page.html              # a dataset alone (annotations,
                                                                    # and its `narration` column if any)

The page holds everything (frames as PNG data URIs, the data as JSON, a little JavaScript; no
network, no external file): per episode a playable frame strip (click, arrow keys, play), and
for the selected frame the true annotations, the narration and the predictor's forecast side by
side, events coloured by whether they match within ``--tolerance`` frames (annotation found /
missed; narration correct / false), and the collapse monitors over time (entropy, <nil> rate,
distinct-1 per ``--bucket`` frames) as a small plot with a cursor. ``#ep=E&f=T`` in the URL
selects episode E, frame T (and changes as you step).

Size is bounded: at most ``--max-frames`` frames per page (default 240, about 0.5 MB for Crafter's 64x64
frames), spread over ``--episodes`` episodes; longer episodes are cut and the page says so.
"""
from __future__ import annotations

import base64
import html
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tyro

from agents.errors import AgentsError


class ViewError(AgentsError):
    """The viewer cannot run as asked; the message names the problem and the fix."""


@dataclass
class ViewConfig:
    """``python -m agents.view``: write a self-contained HTML narration viewer."""

    source: tyro.conf.Positional[str]
    """A run directory (or checkpoint) of ``python -m agents.training``, or a dataset directory."""
    out: Path = Path("narration.html")
    """The HTML file to write."""
    data: str | None = None
    """With a run: the dataset to narrate (default: the run's own ``--data``)."""
    checkpoint: str | None = None
    """With a dataset: a run or checkpoint that narrates it (default: no narration, unless the
    dataset has a ``narration`` column)."""
    split: Literal["val", "train", "all"] = "val"
    """With a run: which of its episodes to show (a dataset alone: all)."""
    episodes: int = 3
    """Most episodes on the page."""
    max_frames: int = 240
    """Most frames on the page, over all its episodes (bounds the file size)."""
    forecast: int = 3
    """Future frames the predictor forecasts at each frame (0 = none; ignored without one)."""
    tolerance: int = 2
    """Timing tolerance (frames) for an event to count as matched."""
    bucket: int = 16
    """Frames per point of the monitor plot."""
    device: str = "cpu"
    """Torch device of the agent."""
    threads: int = 0
    """torch CPU threads (0 = the cores this process may use, ``os.sched_getaffinity``)."""

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise ViewError(f"--threads must be >= 0 (0 = the cores this process may use), got "
                            f"{self.threads}.")
        for name in ("episodes", "max_frames", "bucket"):
            if getattr(self, name) < 1:
                raise ViewError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}.")
        if self.forecast < 0 or self.tolerance < 0:
            raise ViewError("--forecast and --tolerance must be >= 0.")


# --------------------------------------------------------------------------- what to show
def resolve_inputs(cfg: ViewConfig) -> tuple[Any, Any, list[int]]:
    """(agent or None, the opened dataset, episode positions to show)."""
    from agents.training import loading as L
    from collect.dataset import DatasetError, open_dataset

    src = Path(cfg.source)
    if not src.exists():
        raise ViewError(f"{cfg.source} does not exist; pass a run directory of "
                        "`python -m agents.training` or a dataset directory.")
    is_dataset = (src / "meta" / "info.json").is_file()
    agent, data, order = None, cfg.data, None
    if is_dataset:
        data = str(src)
        if cfg.checkpoint:
            agent = L.load_agent(cfg.checkpoint, device=cfg.device)
    else:
        agent = L.load_agent(src, device=cfg.device)  # a run dir: its newest intact checkpoint
        meta = agent.metadata or {}
        data = data or (meta.get("config") or {}).get("data")
        eps = meta.get("episodes") or {}
        order = (eps.get("val", []) if cfg.split == "val" else
                 eps.get("train", []) if cfg.split == "train" else None)
        if not data:
            raise ViewError(f"{src} does not record its dataset; pass --data DIR.")
    try:
        ds = open_dataset(data)
    except DatasetError as e:
        raise ViewError(str(e)) from None
    if agent is not None:
        saved = (agent.metadata or {}).get("dataset") or {}
        if saved.get("frame_shape") and list(saved["frame_shape"]) != list(ds.frame_shape):
            raise ViewError(f"The agent was trained on frames of shape {saved['frame_shape']}, "
                            f"{data} has {list(ds.frame_shape)}; pass a dataset of that size.")
    positions = list(range(ds.num_episodes)) if not order else [int(p) for p in order]
    return agent, ds, positions[: cfg.episodes]


def match_events(pred: list[list[str]], true: list[list[str]], tolerance: int,
                 ) -> tuple[list[list[bool]], list[list[bool]]]:
    """Which narrated and which true sentences are matched events (same kind and arguments,
    at most ``tolerance`` frames apart, one to one, earliest first: the pairing behind
    ``agents.model.monitors.event_prf``'s counts). Unparseable sentences are never matched."""
    from byog_env import parse_event

    def keyed(frames: list[list[str]]) -> dict[str, list[tuple[int, int]]]:
        out: dict[str, list[tuple[int, int]]] = {}
        for t, sentences in enumerate(frames):
            for j, s in enumerate(sentences):
                try:
                    ev = parse_event(s)
                except ValueError:
                    continue
                key = json.dumps([ev.kind, ev.args], sort_keys=True, default=str)
                out.setdefault(key, []).append((t, j))
        return out

    pred_hit = [[False] * len(s) for s in pred]
    true_hit = [[False] * len(s) for s in true]
    p_by, t_by = keyed(pred), keyed(true)
    for key, trues in t_by.items():
        preds, i = p_by.get(key, []), 0
        for tq, jq in trues:  # both sorted by frame
            while i < len(preds) and preds[i][0] < tq - tolerance:
                i += 1
            if i < len(preds) and preds[i][0] <= tq + tolerance:
                pred_hit[preds[i][0]][preds[i][1]] = True
                true_hit[tq][jq] = True
                i += 1
    return pred_hit, true_hit


def narrate_episode(agent: Any, frames: np.ndarray, forecast: int) -> dict[str, Any]:
    """Live narration of one episode's frames (the bounded-context ``Narrator``)."""
    import torch

    from agents.model.text import unslot
    from agents.narrate.narrator import Narrator

    horizon = forecast if agent.predictor is not None else 0
    nar = Narrator(agent, forecast=horizon, greedy=True)
    nar.reset()
    said, ahead, entropy, ids = [], [], [], []
    for t in range(frames.shape[0]):
        step = nar.step(torch.as_tensor(frames[t : t + 1]))
        said.append(unslot(step.ids[:, None].cpu(), agent.tokenizer)[0][0])
        ahead.append(step.forecast[0] if horizon else [])
        entropy.append(float(step.entropy[0]))
        ids.append(step.ids[0].cpu())
    return {"narration": said, "forecast": ahead, "entropy": entropy, "ids": torch.stack(ids)}


def monitors_over_time(ids: Any, entropy: list[float], tokenizer: Any, bucket: int,
                       ) -> dict[str, list[float]]:
    """Collapse monitors per ``bucket`` frames: mean entropy, <nil> rate, distinct-1."""
    import torch

    from agents.model import monitors as M

    out: dict[str, list[float]] = {"start": [], "entropy": [], "nil_rate": [], "distinct_1": []}
    for s in range(0, ids.shape[0], bucket):
        chunk = ids[s : s + bucket][None]  # [1, n, k]
        m = M.narration_metrics(chunk, tokenizer, torch.ones(chunk.shape[:2], dtype=torch.bool))
        out["start"].append(s)
        out["entropy"].append(float(np.mean(entropy[s : s + bucket])))
        out["nil_rate"].append(float(m["nil_rate"]))
        out["distinct_1"].append(float(m["distinct_1"]))
    return out


def png_uri(frame: np.ndarray) -> str:
    """A frame as a PNG data URI."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame)).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def build_payload(cfg: ViewConfig) -> dict[str, Any]:
    """Everything the page shows, as JSON-able data (also what the tests compare with)."""
    agent, ds, positions = resolve_inputs(cfg)
    budget = cfg.max_frames
    episodes = []
    for pos in positions:
        if budget <= 0:
            break
        ep = ds.episode(pos)
        n = min(ep.length, budget)
        budget -= n
        frames = ep.frames[:n]
        truth = [list(a) for a in ep.annotations[:n]]
        item: dict[str, Any] = {"episode": int(ep.record.get("episode_index", pos)),
                                "position": pos, "length": ep.length, "shown": n,
                                "truth": truth, "narration": None, "forecast": None,
                                "monitors": None}
        if agent is not None:
            r = narrate_episode(agent, frames, cfg.forecast)
            item.update(narration=r["narration"], forecast=r["forecast"],
                        monitors=monitors_over_time(r["ids"], r["entropy"], agent.tokenizer,
                                                    cfg.bucket))
        else:  # a narrated dataset carries a `narration` column
            from collect.dataset import DatasetError

            try:
                item["narration"] = [list(x) for x in ds.read_column(pos, "narration")[:n]]
            except DatasetError:
                item["narration"] = None  # none: the annotations alone
        said = item["narration"] or [[] for _ in range(n)]
        item["narration_hit"], item["truth_hit"] = match_events(said, truth, cfg.tolerance)
        item["frames"] = [png_uri(f) for f in frames]
        episodes.append(item)
    source = Path(cfg.source).resolve()
    return {"title": f"BYOG narration: {source.name}", "source": str(source),
            "dataset": str(ds.path), "env": ds.info.get("env_id") or ds.info.get("env"),
            "tolerance": cfg.tolerance, "bucket": cfg.bucket, "max_frames": cfg.max_frames,
            "has_agent": agent is not None, "episodes": episodes}


# --------------------------------------------------------------------------- the page
_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:16px;color:#222;background:#fafafa}
h1{font-size:18px;margin:0 0 4px} .sub{color:#666;margin-bottom:12px}
#main{display:flex;gap:16px;align-items:flex-start}
#frame{width:256px;height:256px;image-rendering:pixelated;border:1px solid #ccc;background:#000}
.cols{display:grid;grid-template-columns:repeat(3,minmax(180px,1fr));gap:12px;flex:1}
.col h2{font-size:13px;margin:0 0 4px;text-transform:uppercase;color:#555}
.col ul{margin:0;padding-left:16px;min-height:20px} .none{color:#aaa;list-style:none}
li.empty::after{content:"(silence)";color:#aaa} li.hit{color:#11772b} li.miss{color:#c0261b} li.fp{color:#c46a00} li.plain{color:#333}
#strip{display:flex;gap:2px;overflow-x:auto;margin:12px 0;padding-bottom:4px}
#strip img{width:32px;height:32px;image-rendering:pixelated;cursor:pointer;opacity:.6;
  border:2px solid transparent} #strip img.on{opacity:1;border-color:#2463eb}
#strip img.ev{border-bottom-color:#11772b}
#controls button,#controls select{margin-right:6px} #pos{font-variant-numeric:tabular-nums}
#plot{margin-top:8px} .legend span{margin-right:12px} .note{color:#888;font-size:12px}
"""

_JS = r"""
const D = JSON.parse(document.getElementById('data').textContent);
let ep = 0, f = 0, timer = null;
const $ = id => document.getElementById(id);
function parseHash() {
  const m = new URLSearchParams(location.hash.slice(1));
  ep = Math.min(Math.max(parseInt(m.get('ep') || '0') || 0, 0), D.episodes.length - 1);
  const n = D.episodes[ep].shown;
  f = Math.min(Math.max(parseInt(m.get('f') || '0') || 0, 0), n - 1);
}
function list(el, items, classes) {
  el.innerHTML = '';
  if (!items || !items.length) { const li = document.createElement('li');
    li.className = 'none'; li.textContent = '—'; el.appendChild(li); return; }
  items.forEach((s, i) => { const li = document.createElement('li');
    li.className = classes ? classes[i] : (s ? 'plain' : 'empty'); li.textContent = s;
    el.appendChild(li); });
}
function strip() {
  const s = $('strip'); s.innerHTML = '';
  const E = D.episodes[ep];
  E.frames.forEach((uri, t) => { const im = document.createElement('img'); im.src = uri;
    im.title = 'frame ' + t; if (E.truth[t].length) im.classList.add('ev');
    im.onclick = () => go(t); s.appendChild(im); });
}
function plot() {
  const E = D.episodes[ep], svg = $('plot');
  if (!E.monitors) { svg.innerHTML = ''; $('plotnote').textContent = 'no narration: no monitors';
    return; }
  const W = 600, H = 120, M = E.monitors, n = E.shown;
  const maxEnt = Math.max(1e-6, ...M.entropy);
  const series = [['entropy', '#2463eb', v => v / maxEnt], ['nil_rate', '#999', v => v],
                  ['distinct_1', '#11772b', v => v]];
  let out = `<rect x="0" y="0" width="${W}" height="${H}" fill="#fff" stroke="#ddd"/>`;
  for (const [k, c, sc] of series) {
    const pts = M[k].map((v, i) => `${(M.start[i] + D.bucket / 2) / n * W},` +
                                  `${H - 4 - sc(v) * (H - 8)}`).join(' ');
    out += `<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts}"/>`;
  }
  out += `<line id="cursor" x1="0" x2="0" y1="0" y2="${H}" stroke="#c0261b"/>`;
  svg.innerHTML = out;
  $('plotnote').textContent = `per ${D.bucket} frames; entropy scaled to its max ` +
    `(${maxEnt.toFixed(2)} nats)`;
}
function show() {
  const E = D.episodes[ep];
  $('frame').src = E.frames[f];
  $('pos').textContent = `episode ${E.episode}, frame ${f} / ${E.shown - 1}`;
  list($('truth'), E.truth[f],  // nothing narrated: nothing to colour
       E.narration ? E.truth_hit[f].map(h => h ? 'hit' : 'miss') : null);
  list($('narration'), E.narration ? E.narration[f] : null,
       E.narration ? E.narration_hit[f].map(h => h ? 'hit' : 'fp') : null);
  list($('forecast'), E.forecast ? E.forecast[f] : null, null);
  document.querySelectorAll('#strip img').forEach((im, t) => im.classList.toggle('on', t === f));
  const c = $('cursor'); if (c) { const x = (f + 0.5) / E.shown * 600;
    c.setAttribute('x1', x); c.setAttribute('x2', x); }
  document.body.dataset.ep = ep; document.body.dataset.f = f;
}
function go(t, e) {
  const changed = e !== undefined && e !== ep;
  if (e !== undefined) ep = e;
  f = Math.min(Math.max(t, 0), D.episodes[ep].shown - 1);
  history.replaceState(null, '', `#ep=${ep}&f=${f}`);
  if (changed) { strip(); plot(); $('episode').value = ep; }
  show();
}
function play() {
  if (timer) { clearInterval(timer); timer = null; $('play').textContent = 'play'; return; }
  $('play').textContent = 'pause';
  timer = setInterval(() => { if (f >= D.episodes[ep].shown - 1) play(); else go(f + 1); }, 150);
}
function init() {
  document.title = D.title; $('title').textContent = D.title;
  $('sub').textContent = `${D.env || ''} · dataset ${D.dataset} · events matched within ` +
    `${D.tolerance} frames · at most ${D.max_frames} frames per page`;
  const sel = $('episode');
  D.episodes.forEach((E, i) => { const o = document.createElement('option'); o.value = i;
    o.textContent = `episode ${E.episode} (${E.shown}${E.shown < E.length ? ' of ' + E.length
    : ''} frames)`; sel.appendChild(o); });
  sel.onchange = () => go(0, parseInt(sel.value));
  $('prev').onclick = () => go(f - 1); $('next').onclick = () => go(f + 1);
  $('play').onclick = play;
  document.addEventListener('keydown', e => { if (e.key === 'ArrowRight') go(f + 1);
    if (e.key === 'ArrowLeft') go(f - 1); if (e.key === ' ') { e.preventDefault(); play(); } });
  window.addEventListener('hashchange', () => { const e0 = ep; parseHash();
    if (e0 !== ep) { strip(); plot(); sel.value = ep; } show(); });
  parseHash(); sel.value = ep; strip(); plot(); show();
}
init();
"""

_BODY = """<h1 id="title"></h1><div class="sub" id="sub"></div>
<div id="controls"><select id="episode"></select><button id="prev">&larr;</button>
<button id="play">play</button><button id="next">&rarr;</button> <span id="pos"></span></div>
<div id="strip"></div>
<div id="main"><img id="frame" alt="frame">
<div class="cols">
<div class="col"><h2>true annotations</h2><ul id="truth"></ul></div>
<div class="col"><h2>narration</h2><ul id="narration"></ul></div>
<div class="col"><h2>forecast (next frames)</h2><ul id="forecast"></ul></div>
</div></div>
<div class="legend"><span style="color:#11772b">&#9632; matched event</span>
<span style="color:#c0261b">&#9632; annotation missed</span>
<span style="color:#c46a00">&#9632; narrated, not true</span></div>
<svg id="plot" width="600" height="120"></svg>
<div class="note"><span id="plotnote"></span>; lines: <span style="color:#2463eb">entropy</span>,
<span style="color:#999">&lt;nil&gt; rate</span>, <span style="color:#11772b">distinct-1</span>.
Keys: &larr; &rarr; step, space plays.</div>"""


def render_html(payload: dict[str, Any]) -> str:
    """The self-contained page (the payload as JSON in a ``<script type="application/json">``)."""
    data = json.dumps(payload, separators=(",", ":")).replace("</", "<\\/")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(payload['title'])}</title><style>{_CSS}</style></head>"
            f"<body>{_BODY}<script type=\"application/json\" id=\"data\">{data}</script>"
            f"<script>{_JS}</script></body></html>\n")


def main(cfg: ViewConfig) -> Path:
    """Build and write the page; returns its path."""
    if cfg.threads:  # the CLI resolves 0 to the cores this process may use
        from byog_env.threads import set_threads

        set_threads(cfg.threads, import_torch=True)
    payload = build_payload(cfg)
    if not payload["episodes"]:
        raise ViewError(f"{cfg.source} has no episodes to show (split {cfg.split!r}); try "
                        "--split all.")
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = cfg.out.with_name(cfg.out.name + ".tmp")
    tmp.write_text(render_html(payload))
    tmp.replace(cfg.out)
    shown = sum(e["shown"] for e in payload["episodes"])
    print(f"wrote {cfg.out} ({cfg.out.stat().st_size / 1e6:.1f} MB): {len(payload['episodes'])} "
          f"episode(s), {shown} frames{'' if payload['has_agent'] else ', no narration'}")
    return cfg.out


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point: one ``error:`` line and exit 2 on a bad input, 130 on Ctrl-C."""
    from byog_core.cli import run_cli
    from byog_env.threads import resolve_threads

    def body() -> int:
        try:
            cfg = tyro.cli(ViewConfig, args=argv, description=__doc__.split("\n")[0])
        except SystemExit as exit_:  # --help, or tyro's own one-message parse error
            return int(exit_.code or 0)
        cfg.threads = resolve_threads(cfg.threads)  # 0: the cores this process may use
        main(cfg)
        return 0

    return run_cli(body, on_interrupt="no page written.")


if __name__ == "__main__":
    sys.exit(cli())
