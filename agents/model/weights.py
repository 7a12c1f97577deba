"""Weights files from other people: a safetensors header read and checked on its own, and the
module a config describes compared with it before the module is built.

A checkpoint's ``config.json`` says how big the model is; its ``model.safetensors`` header
says what the file holds. Building the model first and loading second (what
``safetensors.torch.load_model`` does) lets a 64-byte config ask for a 9.7 GB model before any
check runs (issue #26). Here the module is built on torch's ``meta`` device (shapes only, no
memory), its tensors compared with the header, and only a match is built for real:
:func:`check_weights`. The header reader checks every offset against the file's size, so
whatever is loaded afterwards is bounded by the bytes on disk.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
               "U8": 1, "U16": 2, "U32": 4, "U64": 8, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
MAX_HEADER = 100 << 20
"""safetensors' own limit on the JSON header (100 MB)."""


def header_problem(f: str | Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(header, None)`` for a well-formed safetensors file, else ``(None, why)``: reads the
    header only, checks every tensor's dtype, shape and byte range against the file's size."""
    f = Path(f)
    try:
        size = f.stat().st_size
        if not f.is_file():
            return None, "not a regular file"
        with open(f, "rb") as fh:
            head = fh.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if n < 0 or n > size - 8:
                return None, f"truncated ({size} bytes)"
            if n > MAX_HEADER:
                return None, f"unreadable header (a {n}-byte header, over safetensors' limit)"
            header = json.loads(fh.read(n))
        if not isinstance(header, dict):
            raise TypeError("not an object")
        end = 0
        for name, v in header.items():
            if name == "__metadata__":
                continue
            shape, (a, b) = v["shape"], v["data_offsets"]
            if not all(isinstance(x, int) and x >= 0 for x in (*shape, a, b)) or b < a:
                raise ValueError(name)
            if math.prod(shape) * DTYPE_BYTES[v["dtype"]] != b - a:
                return None, f"unreadable header (tensor {name!r}: {b - a} bytes for shape {shape} {v['dtype']})"
            end = max(end, b)
    except (OSError, ValueError, UnicodeDecodeError, KeyError, TypeError, IndexError) as e:
        return None, f"unreadable header ({type(e).__name__})"
    if 8 + n + end != size:
        return None, f"truncated ({size} bytes, its header says {8 + n + end})"
    return header, None


def tensor_shapes(f: str | Path, *, what: str, error: type[Exception]) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in a safetensors file; ``error`` when it is malformed."""
    header, why = header_problem(f)
    if header is None:
        raise error(f"{what} {f} is {why}; the file is damaged or not a safetensors file.")
    return {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}


def check_weights(build: Callable[[], Any], f: str | Path, *, what: str, error: type[Exception],
                  skip: Iterable[str] = ()) -> None:
    """Builds ``build()`` on the meta device (no memory) and compares its state dict with the
    tensors in ``f``'s header: every name present on both sides with the same shape.

    Args:
        build: Builds the module the config describes (called under ``torch.device("meta")``).
        f: The safetensors file.
        what: What the file is, for the error.
        error: The exception class to raise.
        skip: State names whose shape the file decides (fitted buffers sized on load).

    Raises:
        error: the file is malformed, or its tensors disagree with what the config builds.
    """
    import torch

    saved = tensor_shapes(f, what=what, error=error)
    with torch.device("meta"):
        module = build()
    own = {k: tuple(v.shape) for k, v in module.state_dict().items() if k not in set(skip)}
    del module
    saved = {k: v for k, v in saved.items() if k not in set(skip)}
    missing, unexpected = sorted(set(own) - set(saved)), sorted(set(saved) - set(own))
    shapes = [f"{k}: config {list(own[k])}, file {list(saved[k])}" for k in sorted(set(own) & set(saved))
              if own[k] != saved[k]]
    if missing or unexpected or shapes:
        parts = [f"{len(items)} {label} (first: {items[0]})" for label, items in
                 (("with other shapes", shapes), ("missing from the file", missing),
                  ("not in the config", unexpected)) if items]
        raise error(f"{Path(f).name} does not match its config.json: tensors {'; '.join(parts)}. The config "
                    "and the weights come from different models; use the directory as it was written.")


def check_dir(path: str | Path, *, what: str, error: type[Exception]) -> Path:
    """A weights directory from anyone, checked before reading (see
    :func:`collect.untrusted.check_tree`): links stay inside it, regular files only."""
    from collect.untrusted import check_tree

    if not os.path.isdir(path):
        return Path(path)  # the caller reports a missing directory in its own words
    return check_tree(path, what=what, error=error)
