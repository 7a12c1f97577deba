"""Hostile files (issue #26, part 1): datasets, checkpoints and LeRobot folders made by someone
else cannot write outside the output folder, explode memory, leave their root, hang a reader or
end in a traceback.

Every case below is one CLI call on a crafted input: the cases the issue lists, plus seeded
random byte flips and truncations of a valid dataset (``byog-inspect --deep``), checkpoint
(``agents.narrate.command``) and LeRobot folder (``collect.importers lerobot``). For each case:

- exit 0 with correct output (the PNGs / the narration / a dataset that validates deeply), or
  exit 1 or 2 with exactly one ``error:`` line; never a traceback;
- the peak RSS of the interpreter that ran it stays under 1 GB;
- it finishes within its time limit (a FIFO must not block it);
- no file outside its output directory is created or changed (every case directory holds a
  ``victim/`` file its links point at, snapshotted before and after).

The cases run in-process, in one interpreter per batch (``tests/hostile_worker.py``), not one
interpreter each; the counts are printed at the end of the run like the fault suite's.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fault_helpers import ROOT, TESTS, collect_env, snapshot
from helpers import synthetic_dataset
from hostile_worker import ENV_ID

from collect.dataset import open_dataset

RSS_LIMIT_MB = 1024
FLIPS = {"dataset": 80, "checkpoint": 60, "lerobot": 60}
"""Seeded random corruptions per input kind (half byte flips, half truncations)."""
SIZE = 16
EPISODES, LENGTH = 3, 12
NARRATE_STEPS = 3


# --------------------------------------------------------------------------- valid inputs
def _checkpoint(path: Path) -> Path:
    import torch

    from agents.config import make_model_config
    from agents.model.agent import BYOGAgent
    from agents.model.text import train_tokenizer

    torch.manual_seed(0)
    tok = train_tokenizer(["collected 1 wood", "tree in view", "made wood pickaxe", "saw thing0"])
    cfg = make_model_config("tiny", text={"tokens_per_frame": 4},
                            lm={"hidden_size": 32, "num_heads": 2, "intermediate_size": 64},
                            obs={"cnn_channels": [8, 8], "out_dim": 32})
    BYOGAgent(cfg, tok).save_pretrained(path / "agent")
    (path / "meta.json").write_text(json.dumps({"step": 0, "dataset": {
        "env_id": ENV_ID, "frame_shape": [SIZE, SIZE, 3]}}))
    return path


BOMB_MIB = 512
"""The decompression bomb's frame (a few hundred KB on disk). Without the size check, reading
it costs several times this (the issue measured 4.3 GB for 1 GiB): over the RSS limit."""


def _bomb(episode_file: Path, out: Path) -> None:
    """``episode_file`` with row 0's frame replaced by BOMB_MIB of zeros (built in a child
    process, so this test's own memory stays small)."""
    code = (
        "import sys, pyarrow as pa, pyarrow.parquet as pq\n"
        "t = pq.read_table(sys.argv[1]); md = pq.read_metadata(sys.argv[1]).metadata\n"
        f"big = bytes({BOMB_MIB} << 20)\n"
        "frames = [big] + t.column('frame').to_pylist()[1:]\n"
        "t = t.set_column(t.schema.get_field_index('frame'), 'frame', pa.array(frames, pa.binary()))\n"
        "pq.write_table(t.replace_schema_metadata(md), sys.argv[2], compression='zstd')\n")
    subprocess.run([sys.executable, "-c", code, str(episode_file), str(out)], check=True, env=collect_env())


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    from collect.lerobot import export_lerobot

    root = tmp_path_factory.mktemp("hostile")
    data = synthetic_dataset(root / "dataset", episodes=EPISODES, length=LENGTH, size=SIZE)
    lerobot = export_lerobot(data, root / "lerobot", vcodec="h264", language=True).out
    ckpt = _checkpoint(root / "checkpoint")
    _bomb(data / "data/chunk-000/episode_000000.parquet", root / "bomb.parquet")
    return {"root": root, "dataset": data, "lerobot": lerobot, "checkpoint": ckpt,
            "bomb": root / "bomb.parquet", "vqvae": _vqvae(data, root / "vqvae")}


def _vqvae(data: Path, path: Path) -> Path:
    """A fitted VQ-VAE (one step) for ``agents.obs.embed``, which writes into the dataset itself."""
    import torch

    from agents.obs import ObsEncoderConfig
    from agents.obs.vqvae import VQVAEEncoder

    enc = VQVAEEncoder(ObsEncoderConfig(kind="vqvae", vqvae_hidden=8, vqvae_codebook_size=4, vqvae_code_dim=4))
    enc.fit(torch.from_numpy(open_dataset(data).episode(0).frames), steps=1, batch_size=4, progress=False)
    return enc.save(path)


# --------------------------------------------------------------------------- cases
class Case:
    """One CLI call on one crafted copy of an input, in its own directory."""

    def __init__(self, root: Path, n: int, name: str, source: Path, cli: str, *, expect: str = "any",
                 check: str | None = None, message: str | tuple[str, ...] = (), timeout: int = 30) -> None:
        self.name, self.cli, self.expect, self.check = name, cli, expect, check
        self.message = (message,) if isinstance(message, str) else message
        """Words the error line must contain."""
        self.dir = root / f"{n:03d}-{name}"
        self.input = self.dir / "input"
        self.out = self.dir / "out"
        self.timeout = timeout
        (self.dir / "victim").mkdir(parents=True)
        (self.dir / "victim" / "secret.txt").write_text("not yours\n")
        shutil.copytree(source, self.input, symlinks=True)
        self.argv: list[str] = []

    def spec(self) -> dict:
        return {"name": self.name, "cli": self.cli, "argv": self.argv, "dir": str(self.dir),
                "timeout": self.timeout}


def _rewrite_episode(f: Path, edit) -> None:
    """Rewrites an episode file with ``edit(table)``, keeping its footer's episode record."""
    table = pq.read_table(f)
    meta = pq.read_metadata(f).metadata
    pq.write_table(edit(table).replace_schema_metadata(meta), f, compression="zstd")


def _set_frame(f: Path, row: int, value: bytes) -> None:
    def edit(t: pa.Table) -> pa.Table:
        frames = t.column("frame").to_pylist()
        frames[row] = value
        return t.set_column(t.schema.get_field_index("frame"), "frame", pa.array(frames, pa.binary()))
    _rewrite_episode(f, edit)


def _set_files(ds: Path, files: list[str]) -> None:
    f = ds / "meta" / "episodes.parquet"
    t = pq.read_table(f)
    pq.write_table(t.set_column(t.schema.get_field_index("file"), "file", pa.array(files, pa.string())), f)


def _edit_json(f: Path, edit) -> None:
    d = json.loads(f.read_text())
    edit(d)
    f.write_text(json.dumps(d))


EP0 = "data/chunk-000/episode_000000.parquet"


def dataset_cases(inputs, add) -> None:
    src = inputs["dataset"]

    def inspect(name, *, out=True, **kw) -> Case:
        c = add(name, src, "inspect", **kw)
        c.argv = [str(c.input), "--deep", "--frames", "2", "--top", "2"] + (["--out", str(c.out)] if out else [])
        return c

    # writes outside the output folder: a link the dataset ships where inspect writes
    c = inspect("symlinked-contact-sheet", out=False, expect="error", message="symlink")
    (c.input / "inspect").mkdir()
    (c.input / "inspect" / "contact_sheet.png").symlink_to(c.dir / "victim" / "secret.txt")
    c = inspect("symlinked-inspect-dir", out=False, expect="error", message="symlink")
    (c.input / "inspect").symlink_to(c.dir / "victim")
    # agents.obs.embed writes into the dataset: a shipped lock file or card temp name must not redirect it
    for name, link in (("embed-symlinked-lock", "meta/.lock"), ("embed-symlinked-card-tmp", "README.md.tmp")):
        c = add(name, src, "embed", expect="error" if "lock" in name else "ok", check="embed",
                message="lock" if "lock" in name else ())
        (c.input / link).unlink(missing_ok=True)  # the writer leaves its own meta/.lock
        (c.input / link).symlink_to(c.dir / "victim" / "secret.txt")
        c.out = c.input  # its output directory is the dataset
        c.argv = [str(c.input), "--encoder", f"vqvae:{inputs['vqvae']}"]
    c = inspect("user-out-is-a-link", out=False, expect="ok", check="inspect")
    (c.dir / "real-out").mkdir()
    c.out.symlink_to(c.dir / "real-out")  # the user's own --out may be a link
    c.argv += ["--out", str(c.out)]
    # memory bombs
    c = inspect("zstd-bomb-inspect", expect="error", message="decoded bytes")
    shutil.copy(inputs["bomb"], c.input / EP0)
    c = add("zstd-bomb-train", src, "train", expect="error", message="decoded bytes", timeout=60)
    shutil.copy(inputs["bomb"], c.input / EP0)
    c.argv = _train_args(c)
    # paths from metadata that leave the dataset
    c = inspect("episode-file-dotdot", expect="error", message="outside")
    shutil.copy(c.input / EP0, c.dir / "victim" / "episode.parquet")
    _set_files(c.input, ["../victim/episode.parquet"] + [f"data/chunk-000/episode_{i:06d}.parquet" for i in (1, 2)])
    c = inspect("episode-file-absolute", expect="error", message="outside")
    shutil.copy(c.input / EP0, c.dir / "victim" / "episode.parquet")
    _set_files(c.input, [str(c.dir / "victim" / "episode.parquet")] +
               [f"data/chunk-000/episode_{i:06d}.parquet" for i in (1, 2)])
    c = inspect("episode-symlink-outside", expect="error", message="outside")
    shutil.move(c.input / EP0, c.dir / "victim" / "episode.parquet")
    (c.input / EP0).symlink_to(c.dir / "victim" / "episode.parquet")
    c = inspect("episode-symlink-inside", expect="ok", check="inspect")
    (c.input / "store").mkdir()
    shutil.move(c.input / EP0, c.input / "store" / "episode.parquet")
    (c.input / EP0).symlink_to(c.input / "store" / "episode.parquet")
    c = inspect("info-symlink-outside", expect="error", message="outside")
    shutil.move(c.input / "meta" / "info.json", c.dir / "victim" / "info.json")
    (c.input / "meta" / "info.json").symlink_to(c.dir / "victim" / "info.json")
    # hangs
    c = inspect("episode-fifo", expect="error", message="FIFO", timeout=20)
    (c.input / EP0).unlink()
    os.mkfifo(c.input / EP0)
    c = inspect("info-fifo", expect="error", message="FIFO", timeout=20)
    (c.input / "meta" / "info.json").unlink()
    os.mkfifo(c.input / "meta" / "info.json")
    # tracebacks before
    c = inspect("missing-core-column", expect="error", message="reward")
    _rewrite_episode(c.input / EP0, lambda t: t.drop_columns(["reward"]))
    c = inspect("frame-shape-string", expect="error", message="frame_shape")
    _edit_json(c.input / "meta" / "info.json", lambda d: d.update(frame_shape="16"))
    c = inspect("frame-shape-huge", expect="error", message="frame_shape")
    _edit_json(c.input / "meta" / "info.json", lambda d: d.update(frame_shape=[100000, 100000, 3]))
    c = inspect("info-not-json", expect="error", message="JSON")
    (c.input / "meta" / "info.json").write_text("{not json")
    c = inspect("info-a-list", expect="error", message="JSON")
    (c.input / "meta" / "info.json").write_text("[1, 2]")
    c = inspect("episode-record-not-json", expect="error", message="JSON object")
    t = pq.read_table(c.input / "meta" / "episodes.parquet")
    pq.write_table(t.set_column(t.schema.get_field_index("record"), "record",
                                pa.array(["{"] * t.num_rows, pa.string())), c.input / "meta" / "episodes.parquet")
    c = add("export-mp4-negative-fps", src, "export", expect="usage", message="--fps")
    c.argv = ["mp4", str(c.input), "--out", str(c.out), "--fps", "-5"]
    c = add("export-mp4-negative-info-fps", src, "export", expect="error", message="fps")
    c.argv = ["mp4", str(c.input), "--out", str(c.out)]
    _edit_json(c.input / "meta" / "info.json", lambda d: d.update(fps=-5))
    # wrong messages before
    c = inspect("large-binary-frames", expect="ok", check="same-frames")
    _rewrite_episode(c.input / EP0, lambda t: t.set_column(
        t.schema.get_field_index("frame"), "frame", t.column("frame").cast(pa.large_binary())))
    c = inspect("ppm-p5-header", expect="error", message="P5 99x99")
    frame = pq.read_table(c.input / EP0).column("frame")[3].as_py()
    _set_frame(c.input / EP0, 3, b"P5\n99 99\n255\n" + frame[13:])
    c = inspect("ppm-longer-header", expect="error", message="canonical")
    _set_frame(c.input / EP0, 0, b"P6\n16 16\n0255\n" + frame[13:])
    # every episode bad, so the first training batch fails inside the DataLoader worker
    c = add("dataloader-worker-error", src, "train", expect="error", message=("P5 99x99", "DataLoader worker"),
            timeout=90)
    for i in range(EPISODES):
        _set_frame(c.input / f"data/chunk-000/episode_{i:06d}.parquet", 3, b"P5\n99 99\n255\n" + frame[13:])
    c.argv = _train_args(c, "--loader.num_workers", "1", "--loader.val_fraction", "0")


def _train_args(c: Case, *extra: str) -> list[str]:
    from helpers import tiny_args

    return tiny_args(c.input, c.out, 2, "--loader.window", "4", *extra)


def checkpoint_cases(inputs, add) -> None:
    src = inputs["checkpoint"]

    def narrate(name, **kw) -> Case:
        c = add(name, src, "narrate", **kw)
        c.argv = ["--checkpoint", str(c.input), "--env", ENV_ID, "--steps", str(NARRATE_STEPS), "--greedy",
                  "--no-video", "--quiet", "--threads", "1", "--out", str(c.out)]
        return c

    agent = "agent"
    c = narrate("config-asks-for-9gb", expect="error", message="does not match its config")
    _edit_json(c.input / agent / "config.json", lambda d: d["byog"]["lm"].update(hidden_size=2048, num_layers=16,
                                                                                  num_heads=16, intermediate_size=0))
    c = narrate("config-other-width", expect="error", message="does not match its config")
    _edit_json(c.input / agent / "config.json", lambda d: d["byog"]["lm"].update(hidden_size=48, num_heads=2))
    c = narrate("config-not-json", expect="error", message="JSON")
    (c.input / agent / "config.json").write_text("{")
    c = narrate("weights-symlink-outside", expect="error", message="outside")
    shutil.move(c.input / agent / "model.safetensors", c.dir / "victim" / "model.safetensors")
    (c.input / agent / "model.safetensors").symlink_to(c.dir / "victim" / "model.safetensors")
    c = narrate("weights-symlink-inside", expect="ok", check="narrate")
    shutil.move(c.input / agent / "model.safetensors", c.input / "weights.bin")
    (c.input / agent / "model.safetensors").symlink_to(c.input / "weights.bin")
    c = narrate("weights-fifo", expect="error", message="FIFO", timeout=20)
    (c.input / agent / "model.safetensors").unlink()
    os.mkfifo(c.input / agent / "model.safetensors")
    c = narrate("tokenizer-symlink-outside", expect="error", message="outside")
    tok = c.input / agent / "tokenizer" / "tokenizer.json"
    shutil.move(tok, c.dir / "victim" / "tokenizer.json")
    tok.symlink_to(c.dir / "victim" / "tokenizer.json")
    # a Hugging Face hub snapshot: every file a link into the cache repo's blobs/ (allowed)
    c = add("hub-snapshot", src, "narrate", expect="ok", check="narrate")
    repo = c.dir / "hub" / "models--someone--byog"
    snap = repo / "snapshots" / "0123abc"
    for f in sorted(p for p in (c.input / agent).rglob("*") if p.is_file()):
        blob = repo / "blobs" / hashlib.sha1(str(f).encode()).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, blob)
        link = snap / f.relative_to(c.input / agent)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    c.argv = ["--checkpoint", str(snap), "--env", ENV_ID, "--steps", str(NARRATE_STEPS), "--greedy", "--no-video",
              "--quiet", "--threads", "1", "--out", str(c.out)]


def lerobot_cases(inputs, add) -> None:
    src = inputs["lerobot"]

    def imp(name, **kw) -> Case:
        c = add(name, src, "import", **kw)
        c.argv = ["lerobot", str(c.input), "--out", str(c.out)]
        return c

    info = Path("meta") / "info.json"
    c = imp("info-not-json", expect="error", message="JSON")
    (c.input / info).write_text('{"codebase_version": "v3.0",')
    c = imp("video-path-padding", expect="error", message="video_path")
    _edit_json(c.input / info, lambda d: d.update(video_path="videos/{video_key:>1000000000}/file.mp4"))
    c = imp("video-path-attribute", expect="error", message="video_path")
    _edit_json(c.input / info, lambda d: d.update(video_path="videos/{video_key.__class__}/x.mp4"))
    c = imp("video-path-dotdot", expect="error", message="outside")
    _edit_json(c.input / info, lambda d: d.update(
        video_path="../victim/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"))
    shutil.copytree(c.input / "videos", c.dir / "victim", dirs_exist_ok=True)
    c = imp("data-path-absolute", expect="error", message="outside")
    shutil.copytree(c.input / "data", c.dir / "victim" / "data")
    _edit_json(c.input / info, lambda d: d.update(
        data_path=str(c.dir / "victim" / "data") + "/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"))
    c = imp("camera-key-dotdot", expect="error", message="Camera key")

    def rename_camera(d):
        d["features"]["../../victim/cam"] = d["features"].pop("observation.images.frame")
    _edit_json(c.input / info, rename_camera)
    c = imp("fps-negative", expect="error", message="fps")
    _edit_json(c.input / info, lambda d: d.update(fps=-10))
    c = imp("stats-action-max-garbage", expect="error", message="malformed")
    _edit_json(c.input / "meta" / "stats.json", lambda d: d["action"].update(max="x"))
    c = imp("video-fifo", expect="error", message="FIFO", timeout=20)
    video = next((c.input / "videos").rglob("*.mp4"))
    video.unlink()
    os.mkfifo(video)
    c = imp("video-symlink-outside", expect="error", message="outside")
    video = next((c.input / "videos").rglob("*.mp4"))
    shutil.move(video, c.dir / "victim" / "video.mp4")
    video.symlink_to(c.dir / "victim" / "video.mp4")


# --------------------------------------------------------------------------- random corruptions
def _corrupt(rng: random.Random, f: Path) -> str:
    """Flips 1-8 random bytes of ``f`` or truncates it at a random length; says which."""
    data = bytearray(f.read_bytes())
    if rng.random() < 0.5 and len(data) > 1:
        cut = rng.randrange(len(data))
        f.write_bytes(bytes(data[:cut]))
        return f"truncate@{cut}"
    # half the flips land in the first 512 bytes: headers, where a flip changes a size
    where = [rng.randrange(min(len(data), 512) if rng.random() < 0.5 else len(data))
             for _ in range(rng.randint(1, 8))]
    for i in where:
        data[i] ^= 1 << rng.randrange(8)
    f.write_bytes(bytes(data))
    return "flip@" + ",".join(map(str, where[:3]))


FUZZ_FILES = {
    "dataset": [EP0, "data/chunk-000/episode_000001.parquet", "meta/episodes.parquet", "meta/info.json"],
    "checkpoint": ["agent/model.safetensors", "agent/config.json", "agent/tokenizer/tokenizer.json",
                   "meta.json"],
    "lerobot": ["meta/info.json", "meta/episodes/chunk-000/file-000.parquet", "data/chunk-000/file-000.parquet",
                "meta/tasks.parquet", "videos/observation.images.frame/chunk-000/file-000.mp4",
                "meta/stats.json"],
}


def fuzz_cases(inputs, add) -> None:
    rng = random.Random(26)
    for kind, n in FLIPS.items():
        for i in range(n):
            rel = FUZZ_FILES[kind][i % len(FUZZ_FILES[kind])]
            cli, check = {"dataset": ("inspect", "inspect"), "checkpoint": ("narrate", "narrate"),
                          "lerobot": ("import", "import")}[kind]
            c = add(f"fuzz-{i}", inputs[kind], cli, check=check)
            (c.input / rel).unlink()  # copytree copied it; a fresh file, not the source's inode
            shutil.copy(inputs[kind] / rel, c.input / rel)
            c.name += "-" + Path(rel).name + "-" + _corrupt(rng, c.input / rel)
            c.argv = {
                "inspect": [str(c.input), "--deep", "--frames", "2", "--top", "2", "--out", str(c.out)],
                "narrate": ["--checkpoint", str(c.input), "--env", ENV_ID, "--steps", str(NARRATE_STEPS), "--greedy",
                            "--no-video", "--quiet", "--threads", "1", "--out", str(c.out)],
                "import": ["lerobot", str(c.input), "--out", str(c.out)],
            }[cli]


# --------------------------------------------------------------------------- running and judging
def _run_batch(specs: list[dict], workdir: Path) -> dict[str, dict]:
    """Runs every case in as few interpreters as possible. An interpreter that dies (a crash in
    native code) or stops answering (a hang the alarm cannot break, e.g. inside C) is recorded
    for its case, killed, and the batch restarts after it."""
    cases_file, results_file = workdir / "cases.json", workdir / "results.jsonl"
    cases_file.write_text(json.dumps(specs))
    results_file.write_text("")
    first = 0
    while first < len(specs):
        proc = subprocess.Popen([sys.executable, str(TESTS / "hostile_worker.py"), str(cases_file),
                                 str(results_file), str(first)], env=collect_env(OMP_NUM_THREADS="1"), cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        done, since = first, time.monotonic()
        limit = 120  # the worker's imports, then each case's own limit plus a margin
        while proc.poll() is None and time.monotonic() - since < limit:
            time.sleep(0.2)
            now = len(results_file.read_text().splitlines())
            if now != done:
                done, since = now, time.monotonic()
                limit = specs[done]["timeout"] + 30 if done < len(specs) else 60
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
        done = len(results_file.read_text().splitlines())
        if proc.returncode == 0 and done == len(specs):
            break
        what = "hung (killed)" if proc.returncode == -9 else f"died ({proc.returncode}): {err[-1500:]}"
        with results_file.open("a") as f:
            f.write(json.dumps({"name": specs[done]["name"], "crashed": what}) + "\n")
        first = done + 1
    return {r["name"]: r for r in (json.loads(line) for line in results_file.read_text().splitlines())}


def _files(case: Case) -> dict[str, str]:
    """Hashes of every file in the case's directory outside its output directory."""
    out = {}
    for rel, (data, mode) in snapshot(case.dir).items():
        if not (case.dir / rel).resolve().is_relative_to(case.out.resolve()) and not rel.startswith("out"):
            out[rel] = hashlib.sha1(data).hexdigest() + f"-{mode:o}"
    return out


def _output_problem(case: Case, inputs: dict[str, Path]) -> str | None:
    """Why an exit-0 case's output is wrong, or None."""
    if case.check in ("inspect", "same-frames"):
        for png in ("contact_sheet.png", "annotation_frequency.png"):
            if not (case.out / png).is_file() or (case.out / png).read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
                return f"{png} missing or not a PNG"
    if case.check == "same-frames":
        ref, got = open_dataset(inputs["dataset"]), open_dataset(case.input)
        if not all(np.array_equal(ref.episode(i).frames, got.episode(i).frames) for i in range(ref.num_episodes)):
            return "frames differ from the source's"
    if case.check == "embed" and "embedding" not in open_dataset(case.input).info.get("columns", []):
        return "no embedding column written"
    if case.check == "import":
        ds = open_dataset(case.out)
        ds.validate(deep=True)
        if ds.lengths != [LENGTH] * EPISODES:
            return f"imported lengths {ds.lengths}"
    if case.check == "narrate":
        lines = (case.out / "narration.jsonl").read_text().splitlines()
        summary = json.loads((case.out / "summary.json").read_text())
        if len(lines) != NARRATE_STEPS + 1 or summary["frames"] != NARRATE_STEPS + 1:
            return f"{len(lines)} narration lines, summary frames {summary.get('frames')}"
    return None


def _judge(case: Case, r: dict, inputs: dict[str, Path], before: dict[str, str]) -> list[str]:
    """Everything wrong with one case's run (empty: it passed)."""
    if r.get("crashed"):
        return [f"the interpreter {r['crashed']}"]
    problems = []
    if r["escaped"] == "hang":
        problems.append(f"hung past {case.timeout}s")
    elif r["escaped"]:
        problems.append("traceback: " + r["escaped"][-800:])
    text = r["stdout"] + r["stderr"]
    if "Traceback" in text:
        problems.append("printed a traceback")
    errors = [line for line in r["stderr"].splitlines() if line.startswith("error:")]
    if r["rc"] == 0:
        if case.expect in ("error", "usage"):
            problems.append("exit 0, expected an error")
        else:
            why = _output_problem(case, inputs)
            if why:
                problems.append(f"exit 0 with wrong output: {why}")
    elif r["rc"] in (1, 2):
        if len(errors) != 1:
            problems.append(f"{len(errors)} error lines: {r['stderr'][-600:]!r}")
        if case.expect == "ok":
            problems.append(f"exit {r['rc']}, expected success: {r['stderr'][-400:]}")
        if case.expect == "usage" and r["rc"] != 2:
            problems.append(f"exit {r['rc']}, expected 2 (usage)")
        missing = [m for m in case.message if errors and m not in errors[0]]
        if missing:
            problems.append(f"the error does not mention {missing}: {errors[0][:300]}")
        if errors and "victim" in errors[0] and "delete" in errors[0].lower():
            problems.append("the error advises deleting a file outside the input")
        if errors and len(errors[0]) > 700:
            problems.append(f"a {len(errors[0])}-character error line")
    elif r["escaped"] is None:
        problems.append(f"exit {r['rc']}")
    if r["peak_mb"] >= RSS_LIMIT_MB:
        problems.append(f"peak RSS {r['peak_mb']:.0f} MB")
    after = _files(case)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if changed:
        problems.append(f"files outside the output changed: {changed[:5]}")
    return problems


@pytest.mark.slow
def test_hostile_inputs(inputs, fault_counts):
    root = inputs["root"] / "cases"
    cases: list[Case] = []

    def add(name, source, cli, **kw) -> Case:
        kind = next(k for k in ("dataset", "checkpoint", "lerobot") if inputs[k] == source)
        cases.append(Case(root, len(cases), f"{kind}-{name}", source, cli, **kw))
        return cases[-1]

    dataset_cases(inputs, add)
    checkpoint_cases(inputs, add)
    lerobot_cases(inputs, add)
    listed = len(cases)
    fuzz_cases(inputs, add)
    assert len(cases) >= 200
    before = {c.name: _files(c) for c in cases}
    results = _run_batch([c.spec() for c in cases], inputs["root"])
    failures = [f"{c.name}: {'; '.join(p)}" for c in cases
                if (p := _judge(c, results[c.name], inputs, before[c.name]))]
    outcomes = Counter("ok" if results[c.name].get("rc") == 0 else "error line" for c in cases)
    fault_counts["hostile inputs tried"] = len(cases)
    fault_counts["hostile inputs listed in the issue"] = listed
    fault_counts["hostile inputs read fine (exit 0)"] = outcomes["ok"]
    fault_counts["hostile inputs refused (one error line)"] = outcomes["error line"]
    fault_counts["hostile inputs peak RSS MB"] = int(max(r.get("peak_mb", 0) for r in results.values()))
    fault_counts["hostile inputs seconds"] = int(sum(r.get("seconds", 0) for r in results.values()))
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n" + "\n".join(failures)


# --------------------------------------------------------------------------- the checks themselves
def test_page_headers_give_the_decoded_size(tmp_path):
    """The reader allocates what a page header declares; page_sizes reads it without decoding."""
    from collect.untrusted import page_sizes

    f = tmp_path / "bomb.parquet"
    pq.write_table(pa.table({"frame": pa.array([bytes(16 << 20)], pa.binary()), "n": [1]}), f,
                   compression="zstd")
    md = pq.read_metadata(f)
    assert f.stat().st_size < 64 << 10  # a few KB on disk ...
    with open(f, "rb") as fh:
        sizes = [page_sizes(fh, md.row_group(0).column(c)) for c in range(md.num_columns)]
    assert sizes[0] >= 16 << 20  # ... that declare 16 MiB
    assert all(0 < s <= md.row_group(0).column(c).total_uncompressed_size for c, s in enumerate(sizes))


def test_worker_errors_are_shortened_to_their_message():
    from collect.errors import shorten_worker_error

    msg = ("Caught DatasetError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
           '  File "x.py", line 1, in f\n    g()\ncollect.errors.DatasetError: Episode file x is bad; fix it.\n')
    assert shorten_worker_error(msg) == "Episode file x is bad; fix it. (in DataLoader worker process 0)"
    assert shorten_worker_error("plain message") == "plain message"


def test_obs_encoder_directory_is_checked_like_a_checkpoint(tmp_path):
    from agents.obs import ObsEncoderConfig, ObsEncoderError
    from agents.obs.base import write_fitted
    from agents.obs.vqvae import VQVAEEncoder

    cfg = {"kind": "vqvae", "vqvae_hidden": 16, "vqvae_codebook_size": 8, "vqvae_code_dim": 4}
    write_fitted(VQVAEEncoder(ObsEncoderConfig(**cfg)), tmp_path / "vq", "vqvae")
    VQVAEEncoder.load(tmp_path / "vq")  # intact: loads
    meta = json.loads((tmp_path / "vq" / "config.json").read_text())
    meta["config"]["hidden"] = 1024  # ~4000x the parameters the file holds
    (tmp_path / "vq" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ObsEncoderError, match="does not match its config.json"):
        VQVAEEncoder.load(tmp_path / "vq")
    (tmp_path / "elsewhere.safetensors").write_bytes((tmp_path / "vq" / "model.safetensors").read_bytes())
    (tmp_path / "vq" / "model.safetensors").unlink()
    (tmp_path / "vq" / "model.safetensors").symlink_to(tmp_path / "elsewhere.safetensors")
    with pytest.raises(ObsEncoderError, match="outside"):
        VQVAEEncoder.load(tmp_path / "vq")


def test_world_model_directory_is_checked_like_a_checkpoint(tmp_path):
    from agents.imagine.world_model import WorldModel, WorldModelError

    wm = tmp_path / "wm"
    wm.mkdir()
    (tmp_path / "config.json").write_text("{}")
    (wm / "config.json").symlink_to(tmp_path / "config.json")
    with pytest.raises(WorldModelError, match="outside"):
        WorldModel.load(wm)
    (wm / "config.json").unlink()
    os.mkfifo(wm / "config.json")
    with pytest.raises(WorldModelError, match="FIFO"):
        WorldModel.load(wm)
