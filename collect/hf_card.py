"""What makes a dataset directory a Hugging Face dataset: ``datasets.load_dataset(DIR)`` works.

- **Frames as PPM images.** Since format 1.1 a frame is stored as a binary PPM (``P6``) image:
  a 13-15 byte header (``P6\\n<W> <H>\\n255\\n``) and then the same raw RGB bytes as before.
  PIL (and so the ``datasets`` ``Image`` feature) decodes it to H x W x 3 without our code, and
  our reader still takes the pixels zero-copy at a fixed offset (:func:`frame_header`), so
  reading is as fast as with raw bytes. Format 1.0 frames (raw bytes, no header) still read:
  the reader tells them apart by their length.
- **Per-row time.** ``frame_index`` (= ``step``) and ``timestamp`` (= ``step / fps``, seconds)
  columns, as LeRobot and video tools expect.
- **A dataset card** (``README.md``) whose YAML names the default config (``data/*/*.parquet``
  only, not ``meta/episodes.parquet``) and its features, plus the action names.

Old (1.0) datasets keep their layout when resumed (the writer adopts the existing
``format_version`` and ``frame_format``); their card declares ``frame`` as ``binary``.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FRAME_FORMAT = "ppm"
"""``info["frame_format"]`` of datasets written now; absent (``raw``) before format 1.1."""


def frame_header(shape: tuple[int, ...] | list[int]) -> bytes:
    """The PPM header of a ``[H, W, 3]`` frame (deterministic, so its length is known)."""
    h, w = int(shape[0]), int(shape[1])
    return b"P6\n%d %d\n255\n" % (w, h)


def ppm_frames(flat: np.ndarray, shape: tuple[int, ...] | list[int]) -> pa.Array:
    """``uint8 [L, H*W*3]`` -> a binary column of PPM images (one copy, no per-frame Python)."""
    header = np.frombuffer(frame_header(shape), np.uint8)
    n, size = flat.shape
    rows = np.empty((n, len(header) + size), np.uint8)
    rows[:, : len(header)] = header
    rows[:, len(header):] = flat
    offsets = pa.py_buffer(np.arange(n + 1, dtype=np.int32) * rows.shape[1])
    return pa.BinaryArray.from_buffers(pa.binary(), n, [None, offsets, pa.py_buffer(rows.ravel())])


def time_columns(n: int, fps: float) -> dict[str, pa.Array]:
    """``frame_index`` and ``timestamp`` (float32 seconds) of an ``n``-row episode."""
    steps = np.arange(n, dtype=np.int64)
    return {"frame_index": pa.array(steps),
            "timestamp": pa.array((steps / float(fps)).astype(np.float32))}


def resumed_layout(old_info: dict[str, Any]) -> dict[str, Any]:
    """The layout keys a writer resuming a dataset must keep (a 1.0 dataset stays 1.0)."""
    return {"format_version": old_info.get("format_version"),
            "frame_format": old_info.get("frame_format", "raw")}


# ---------------------------------------------------------------------------- the card
def _yaml_feature(name: str, field: pa.Field, frame_format: str) -> list[str]:
    t = field.type
    if name == "frame":
        return [f"- name: {name}", f"  dtype: {'image' if frame_format == FRAME_FORMAT else 'binary'}"]
    if isinstance(t, pa.FixedSizeListType):
        return [f"- name: {name}", f"  list: {t.value_type}", f"  length: {t.list_size}"]
    if isinstance(t, pa.ListType):
        return [f"- name: {name}", f"  list: {_dtype(t.value_type)}"]
    return [f"- name: {name}", f"  dtype: {_dtype(t)}"]


def _dtype(t: pa.DataType) -> str:
    return {"float": "float32", "double": "float64", "large_string": "large_string"}.get(str(t), str(t))


CARD_MARK = "# BYOG dataset:"
"""The heading every card we write has: how a README.md of ours is told from a user's."""


def card_text(info: dict[str, Any], schema: pa.Schema) -> str:
    """The README.md of a dataset: YAML (configs, features) and a short description."""
    frame_format = info.get("frame_format", "raw")
    lines = ["---", "configs:", "- config_name: default", "  data_files:", "  - split: train",
             "    path: data/*/*.parquet", "dataset_info:", "  features:"]
    for field in schema:
        lines += ["  " + x for x in _yaml_feature(field.name, field, frame_format)]
    lines += ["tags:", "- byog", "- annotated-gymnasium", "---", ""]
    h, w, c = info.get("frame_shape") or ["?", "?", "?"]
    names = info.get("action_names")
    actions = ", ".join(f"{i} `{a}`" for i, a in enumerate(names)) if names else "see meta/info.json"
    frames = ("PPM images (PIL decodes them)" if frame_format == FRAME_FORMAT
              else "raw uint8 bytes, reshape to frame_shape")
    lines += [
        f"{CARD_MARK} {info.get('env', 'unknown env')}", "",
        (f"Episodes of `{info.get('env')}` collected with policy `{info.get('policy')}`: "
        f"{info.get('num_episodes', '?')} episodes, {info.get('num_frames', '?')} frames of "
        f"{h}x{w}x{c} at {info.get('fps', '?')} fps, each row annotated with event sentences."), "",
        "```python", "from datasets import load_dataset", "ds = load_dataset(\"path/to/this/dir\")",
        "frame = ds[\"train\"][0][\"frame\"]  # PIL image, H x W x 3", "```", "",
        (f"- `frame`: observation o_t ({frames}); `action`: the action taken from o_t (-1 / NaN on "
        "an episode's last row); `reward`, `terminated`, `truncated`: the arrival at o_t; "
        "`annotations`: the event sentences emitted with o_t; `timestamp` = `step` / fps."),
        f"- Actions: {actions}.",
        ("- `meta/info.json` holds the env, spaces and collection settings; "
        "`meta/episodes.parquet` one row per episode (seed, return, success)."), "",
    ]
    return "\n".join(lines)


def write_card(path: str | Path, info: dict[str, Any]) -> Path | None:
    """Writes ``README.md`` beside ``meta/`` from an episode file's schema (None: no episodes)."""
    path = Path(path)
    first = next(iter(sorted(path.glob("data/chunk-*/episode_*.parquet"))), None)
    if first is None:
        return None
    card = path / "README.md"
    if card.is_symlink() or (card.exists() and not card.is_file()):  # a link or a FIFO: not ours
        print(f"warning: {card} is not a regular file; it is left as is (no dataset card).", file=sys.stderr)
        return None
    if card.exists() and CARD_MARK not in card.read_text(encoding="utf-8", errors="replace"):
        # BYOG never overwrites a file it did not write (issue #14): the user's README stays
        print(f"warning: {card} was not written by BYOG; it is left as is (no dataset card).", file=sys.stderr)
        return None
    from collect.untrusted import write_output  # a new temp file, never one a dataset ships

    text = card_text(info, pq.read_schema(first))
    return write_output(card, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

