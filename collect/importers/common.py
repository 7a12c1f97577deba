"""Shared pieces of the importers: the error type, video reading and frame resizing."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from collect.errors import ImporterError  # re-exported: importers raise it


def require_minari() -> Any:
    """Imports minari, or fails with the install command (it is an optional dependency)."""
    try:
        import minari
    except ImportError:
        raise ImporterError('Minari import/export needs minari: pip install "minari>=0.5".') from None
    return minari


def resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resizes an RGB frame to `size` = (height, width) with INTER_LINEAR, as VPT does.

    VPT's `resize_image` warns "do not resize with any function than INTER_LINEAR": models
    trained on frames resized otherwise see subtly different pixels.
    """
    import cv2

    h, w = size
    if frame.shape[:2] == (h, w):
        return frame
    return cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)


def read_video_frames(path: Path) -> Iterator[np.ndarray]:
    """Yields the RGB uint8 `[H, W, 3]` frames of a video file in order (OpenCV, like VPT)."""
    import cv2

    if not Path(path).is_file():
        raise ImporterError(f"Video {str(path)!r} does not exist; every recording needs its .mp4 file.")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ImporterError(f"Cannot open video {str(path)!r}; the file is corrupt or not a video.")
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


