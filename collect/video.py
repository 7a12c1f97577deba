"""Writing mp4 previews of frame sequences with text lines drawn as subtitles (PyAV + OpenCV).

Used by the collector (``--video``: annotations as subtitles) and by the narration CLI
(narration as subtitles). Any list of text lines per frame works.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

_FONT_SCALE = 0.45
_LINE_H = 16


def hold_subtitles(lines_per_frame: Sequence[Sequence[str]], hold: int = 8,
                   max_lines: int = 3) -> list[list[str]]:
    """Keeps each frame's lines on screen for ``hold`` frames so that short events are readable.

    Args:
        lines_per_frame: Text lines emitted at each frame (e.g. annotations).
        hold: Frames each line stays visible.
        max_lines: Most recent lines shown at once.

    Returns:
        Lines to show at each frame, newest last.
    """
    out: list[list[str]] = []
    live: list[tuple[int, str]] = []  # (expiry frame, text)
    for t, lines in enumerate(lines_per_frame):
        live = [(e, s) for e, s in live if e > t] + [(t + hold, s) for s in lines]
        out.append([s for _, s in live[-max_lines:]])
    return out


def draw_subtitles(frame: np.ndarray, lines: Sequence[str], scale: int = 4,
                   band_lines: int = 3) -> np.ndarray:
    """Upscales ``frame`` (nearest) and adds a black caption band below it with ``lines``.

    Returns:
        ``uint8 [H*scale + band, W*scale, 3]`` with even height and width (for yuv420p).
    """
    import cv2

    big = np.repeat(np.repeat(np.asarray(frame, np.uint8), scale, 0), scale, 1)
    h, w = big.shape[:2]
    band = _LINE_H * band_lines + 6
    canvas = np.zeros((h + band + (h + band) % 2, w + w % 2, 3), np.uint8)
    canvas[:h, :w] = big
    for i, text in enumerate(list(lines)[-band_lines:]):
        y = h + 4 + _LINE_H * (i + 1) - 4
        cv2.putText(canvas, _fit(text, w), (4, y), cv2.FONT_HERSHEY_SIMPLEX, _FONT_SCALE,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def _fit(text: str, width: int) -> str:
    max_chars = max(8, int(width / (20 * _FONT_SCALE)))
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


def write_video(path: str | Path, frames: Sequence[np.ndarray] | np.ndarray,
                subtitles_per_frame: Sequence[Sequence[str]] | None = None, scale: int = 4,
                fps: float = 10.0, band_lines: int = 3, crf: int = 20) -> Path:
    """Writes an H.264 mp4 of ``frames`` with the given text lines drawn under each frame.

    Args:
        path: Output file (``.mp4``); parent directories are created.
        frames: ``uint8 [L, H, W, 3]`` RGB frames.
        subtitles_per_frame: ``L`` lists of text lines (shown as given; see :func:`hold_subtitles`).
        scale: Integer upscaling factor (nearest neighbour keeps pixel art crisp).
        fps: Frames per second.
        band_lines: Height of the caption band in text lines.
        crf: x264 quality (lower is better).

    Returns:
        The path written.
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(frames)
    subs = subtitles_per_frame if subtitles_per_frame is not None else [[] for _ in range(n)]
    if len(subs) != n:
        raise ValueError(f"Got {len(subs)} subtitle lists for {n} frames; pass one list per frame.")
    tmp = path.with_name(path.name + ".tmp.mp4")
    with av.open(str(tmp), mode="w") as container:
        stream = None
        for frame, lines in zip(frames, subs):
            img = draw_subtitles(frame, lines, scale=scale, band_lines=band_lines)
            if stream is None:
                stream = container.add_stream("libx264", rate=round(fps))
                stream.width, stream.height = img.shape[1], img.shape[0]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(crf)}
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    tmp.replace(path)
    return path
