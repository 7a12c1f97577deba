"""Video for LeRobot datasets: codecs (registry :data:`VIDEO_CODECS`), encoding and decoding
frames, and the fidelity of a lossy codec measured against the frames.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from byog_core.registry import Registry
from collect.errors import ExportError, ImporterError, UsageError


# ============================================================================ video
@dataclass(frozen=True)
class VideoSettings:
    """One encoder configuration of the camera stream.

    ``vcodec`` and ``stream_pix_fmt`` are what LeRobot records in ``info.json`` (``video.codec``
    and ``video.pix_fmt``, read off the stream); ``encoder``/``pix_fmt``/``crf`` are what PyAV is
    given. ``exact``: decodes to the very RGB bytes that went in.
    """

    vcodec: str
    encoder: str
    pix_fmt: str
    stream_pix_fmt: str
    crf: int
    exact: bool = False

    def describe(self) -> str:
        """E.g. ``h264 yuv444p crf 0`` (``lossless`` for an exact setting)."""
        return f"{self.vcodec} {self.stream_pix_fmt} " + ("lossless" if self.exact else f"crf {self.crf}")


@dataclass(frozen=True)
class VideoCodec:
    """A ``--vcodec`` choice: its default settings and, where the codec has one, an exact mode."""

    encoder: str
    pix_fmt: str
    stream_pix_fmt: str
    default_crf: int
    crf_range: tuple[int, int]
    lossless: VideoSettings | None
    why_not_lossless: str = ""

    def settings(self, name: str, crf: int | None = None, lossless: bool = False) -> VideoSettings:
        """The settings for ``--crf`` (None: the default) or ``--lossless``."""
        if lossless:
            if crf is not None:
                raise UsageError("--lossless fixes the encoder's quality (exact pixels); drop --crf "
                                 f"{crf} or drop --lossless.")
            if self.lossless is None:
                raise UsageError(f"--vcodec {name} has no exact mode ({self.why_not_lossless}); use "
                                 f"--lossless with --vcodec {' or '.join(lossless_vcodecs())}.")
            return self.lossless
        crf = self.default_crf if crf is None else crf
        lo, hi = self.crf_range
        if not lo <= crf <= hi:
            raise UsageError(f"--crf for --vcodec {name} must be in {lo}..{hi} (lower is better and "
                             f"bigger); got {crf}.")
        return VideoSettings(name, self.encoder, self.pix_fmt, self.stream_pix_fmt, crf)


# Defaults chosen by measured fidelity on Crafter frames (benchmarks/bench_export.py, table in
# its docstring): 4:2:0 chroma subsampling smears 7-pixel tiles whatever the crf (MAE >= 6.3 per
# channel even at AV1 crf 1), so the default is H.264 4:4:4 at crf 0 -- lossless in YUV, off the
# source only by the RGB<->YUV rounding (MAE 0.31, max 2). Exact RGB is H.264's RGB mode (High
# 4:4:4 Predictive, libx264rgb, stored as gbrp), 1.3x the bytes. Both decode through FFmpeg, i.e.
# through LeRobot's torchcodec and PyAV backends. SVT-AV1 (LeRobot's own default) writes 4:2:0
# only: smaller files, kept for when size matters more than pixels.
VIDEO_CODECS: Registry[VideoCodec] = Registry.of("video codec", {
    "h264": VideoCodec("libx264", "yuv444p", "yuv444p", 0, (0, 51),
                       lossless=VideoSettings("h264", "libx264rgb", "rgb24", "gbrp", 0, exact=True)),
    "av1": VideoCodec("libsvtav1", "yuv420p", "yuv420p", 30, (1, 63), lossless=None,
                      why_not_lossless="SVT-AV1 writes 4:2:0 chroma only"),
}, error=UsageError, hint="Register one with collect.lerobot.VIDEO_CODECS.register(name, VideoCodec(...)).")
"""``--vcodec`` -> its encoder settings (LeRobot records ``video.codec`` h264 or av1)."""
DEFAULT_VCODEC = "h264"


def lossless_vcodecs() -> list[str]:
    """The ``--vcodec`` names with an exact (``--lossless``) mode."""
    return [name for name, codec in VIDEO_CODECS.items() if codec.lossless is not None]


def video_settings(vcodec: str = DEFAULT_VCODEC, crf: int | None = None, lossless: bool = False) -> VideoSettings:
    """Resolves ``--vcodec``/``--crf``/``--lossless`` (:class:`UsageError` on a bad combination)."""
    if vcodec not in VIDEO_CODECS:
        raise UsageError(f"--vcodec must be one of {sorted(VIDEO_CODECS)}; got {vcodec!r}.")
    return VIDEO_CODECS[vcodec].settings(vcodec, crf, lossless)


def encode_video(path: Path, frames: Iterator[np.ndarray], fps: int, vcodec: str | VideoSettings = DEFAULT_VCODEC,
                 crf: int | None = None, lossless: bool = False) -> int:
    """Writes RGB frames as one mp4 (a keyframe every 2 frames, as LeRobot encodes).

    Args:
        path: The mp4 to write.
        frames: ``uint8 [H, W, 3]`` RGB frames.
        fps: Frame rate.
        vcodec: A ``--vcodec`` name (with ``crf``/``lossless``), or resolved :class:`VideoSettings`.
        crf: Encoder quality (None: the codec's default).
        lossless: The codec's exact mode.

    Returns:
        The number of frames written.
    """
    import os

    import av

    settings = vcodec if isinstance(vcodec, VideoSettings) else video_settings(vcodec, crf, lossless)
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration otherwise
    if settings.encoder not in av.codecs_available:
        usable = [c for c, v in VIDEO_CODECS.items() if v.encoder in av.codecs_available]
        raise ExportError(f"PyAV here cannot encode {settings.vcodec} ({settings.encoder} missing); use "
                          f"--vcodec {' or '.join(usable)}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with av.open(str(path), "w") as box:
        stream = box.add_stream(settings.encoder, rate=fps)
        stream.pix_fmt = settings.pix_fmt
        stream.codec_context.gop_size = 2
        stream.options = {"crf": str(settings.crf)}
        for frame in frames:
            if n == 0:
                stream.height, stream.width = frame.shape[:2]
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            vf.pts, vf.time_base = n, Fraction(1, fps)
            box.mux(stream.encode(vf))
            n += 1
        box.mux(stream.encode(None))
    return n


def iter_video_frames(path: Path) -> Iterator[np.ndarray]:
    """Every frame of ``path`` as ``uint8 [H, W, 3]`` RGB, in order (PyAV, as LeRobot's pyav backend
    converts: ``to_ndarray(format="rgb24")``)."""
    import av

    with av.open(str(path)) as box:
        for frame in box.decode(box.streams.video[0]):
            yield frame.to_ndarray(format="rgb24")


def pixel_errors(source: np.ndarray, decoded: np.ndarray) -> dict[str, float]:
    """Error sums of decoded frames against their source, per channel value (0..255): ``abs``,
    ``sq``, ``max`` and the number of ``values``; merge with :func:`merge_errors`."""
    diff = np.abs(decoded.astype(np.int32) - source.astype(np.int32))
    return {"abs": float(diff.sum()), "sq": float((diff.astype(np.int64) ** 2).sum()),
            "max": float(diff.max(initial=0)), "values": float(diff.size)}


def merge_errors(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """Two :func:`pixel_errors` sums as one."""
    return {k: max(a[k], b[k]) if k == "max" else a[k] + b[k] for k in ("abs", "sq", "max", "values")}


def fidelity(errors: dict[str, float]) -> dict[str, float]:
    """``mae`` and ``max`` error per channel value and ``psnr`` in dB (inf when exact) of
    :func:`pixel_errors` sums."""
    n = max(errors["values"], 1.0)
    mse = errors["sq"] / n
    return {"mae": errors["abs"] / n, "max": errors["max"],
            "psnr": float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))}


NO_ERRORS = {"abs": 0.0, "sq": 0.0, "max": 0.0, "values": 0.0}


def video_errors(path: Path, frames: Sequence[np.ndarray]) -> dict[str, float]:
    """:func:`pixel_errors` of the video at ``path``, decoded with PyAV, against the ``frames`` it
    was encoded from (an :class:`ExportError` if it holds another number of frames)."""
    total, n = dict(NO_ERRORS), 0
    for n, decoded in enumerate(iter_video_frames(path), 1):
        if n > len(frames):
            break
        total = merge_errors(total, pixel_errors(frames[n - 1], decoded))
    if n != len(frames):
        raise ExportError(f"{path} decodes to {n if n <= len(frames) else 'more than ' + str(len(frames))} "
                          f"frames but {len(frames)} were encoded; the encoder dropped or added frames.")
    return total


def decode_video(path: Path, start: float, stop: float, fps: float,
                 keep: set[int] | None = None) -> dict[int, np.ndarray]:
    """Frames of ``path`` whose time lies in ``[start, stop)``, keyed by ``round((t - start) * fps)``.

    Seeks to the keyframe before ``start`` (multi-episode files), then decodes forward. With
    ``keep``, only those keys are kept and decoding stops once all are found; frames larger
    than :data:`MAX_SIDE` or more decoded bytes than the file can plausibly hold are refused
    (the file may come from anyone).
    """
    import av

    out: dict[int, np.ndarray] = {}
    budget = _decoded_budget(path)
    try:
        with av.open(str(path)) as box:
            stream = box.streams.video[0]
            if start > 0:
                box.seek(int(start / stream.time_base), stream=stream, backward=True)
            for frame in box.decode(stream):
                t = float(frame.pts * stream.time_base) if frame.pts is not None else float(frame.time)
                if t >= stop - 0.5 / fps:
                    break
                key = round((t - start) * fps)
                if t < start - 0.5 / fps or (keep is not None and key not in keep):
                    continue
                if max(frame.width, frame.height) > MAX_SIDE:
                    raise ImporterError(f"Video {path} has {frame.width}x{frame.height} frames, larger than "
                                        f"{MAX_SIDE} pixels a side; resize the dataset before importing.")
                budget -= frame.width * frame.height * 3
                if budget < 0:
                    raise ImporterError(f"Video {path} decodes to more than {MAX_RATIO} times its size; "
                                        "refusing a decompression bomb.")
                out[key] = frame.to_ndarray(format="rgb24")
                if keep is not None and len(out) == len(keep):
                    break
    except (OSError, av.error.FFmpegError) as err:
        raise ImporterError(f"Cannot decode video {path} ({err}); PyAV decodes H.264 and AV1 (libdav1d).") from None
    return out


MAX_SIDE = 4096
"""Largest frame side an import accepts (decoded buffers are sized by it)."""
MAX_RATIO = 1000
"""Decoded bytes a video or image may expand to per stored byte, beyond a floor of 256 MiB."""


def _decoded_budget(path: Path) -> int:
    try:
        return max(256 << 20, MAX_RATIO * path.stat().st_size)
    except OSError:
        return 256 << 20
