"""Pixel fidelity of the LeRobot export (collect/lerobot.py, issue 26 part 2): on Crafter frames
the default video is within MAE 2 per channel and ``--lossless`` is exact, checked by decoding the
mp4 files with PyAV the way LeRobot's pyav backend does (``to_ndarray(format="rgb24")``)."""
import json

import av
import numpy as np
import pytest

from collect.dataset import open_dataset
from collect.export import cli as export_cli
from collect.lerobot import CAMERA_KEY, fidelity, pixel_errors, video_settings
from collect.rollout import CollectConfig, collect_dataset


@pytest.fixture(scope="module")
def crafter_src(tmp_path_factory):
    """Two short random-policy Crafter episodes (7-pixel tiles, the frames that AV1 4:2:0 smears)."""
    root = tmp_path_factory.mktemp("crafter") / "d"
    collect_dataset(CollectConfig(env="crafter", out=root, episodes=2, max_episode_steps=40, progress=False))
    ds = open_dataset(root)
    return root, np.concatenate([ds.episode(i).frames for i in range(ds.num_episodes)])


def _decoded(out):
    """Every frame of the export's video files, in dataset order, decoded with PyAV."""
    frames = []
    for path in sorted((out / "videos" / CAMERA_KEY).glob("chunk-*/file-*.mp4")):
        with av.open(str(path)) as box:
            frames += [f.to_ndarray(format="rgb24") for f in box.decode(box.streams.video[0])]
    return np.stack(frames)


def _export(src, out, *flags, capsys):
    assert export_cli(["lerobot", str(src), "--out", str(out), "--episodes-per-file", "1", *flags]) == 0
    return capsys.readouterr().out


def test_default_export_is_within_mae_2_on_crafter(crafter_src, tmp_path, capsys):
    src, frames = crafter_src
    printed = _export(src, tmp_path / "lr", capsys=capsys)
    decoded = _decoded(tmp_path / "lr")
    assert decoded.shape == frames.shape
    err = np.abs(decoded.astype(int) - frames)
    assert err.mean() <= 2.0 and err.max() <= 2  # only the RGB<->YUV rounding
    # The export reports the same figure it measured, and the bytes on disk.
    assert f"MAE {err.mean():.3f} per channel (max {err.max()})" in printed and "MB video" in printed
    video = json.loads((tmp_path / "lr/meta/info.json").read_text())["features"][CAMERA_KEY]["info"]
    assert (video["video.codec"], video["video.pix_fmt"], video["video.crf"]) == ("h264", "yuv444p", 0)
    with av.open(str(next((tmp_path / "lr/videos").rglob("*.mp4")))) as box:
        assert box.streams.video[0].codec_context.pix_fmt == video["video.pix_fmt"]


def test_lossless_export_is_exact_on_crafter(crafter_src, tmp_path, capsys):
    src, frames = crafter_src
    printed = _export(src, tmp_path / "lr", "--lossless", capsys=capsys)
    np.testing.assert_array_equal(_decoded(tmp_path / "lr"), frames)
    assert "lossless: MAE 0.000 per channel (max 0), PSNR inf dB (exact)" in printed
    video = json.loads((tmp_path / "lr/meta/info.json").read_text())["features"][CAMERA_KEY]["info"]
    assert (video["video.codec"], video["video.pix_fmt"]) == ("h264", "gbrp")


def test_av1_reports_its_loss(crafter_src, tmp_path, capsys):
    """AV1 4:2:0 (LeRobot's default) stays available, and the printed MAE shows what it costs."""
    src, frames = crafter_src
    printed = _export(src, tmp_path / "lr", "--vcodec", "av1", capsys=capsys)
    err = np.abs(_decoded(tmp_path / "lr").astype(int) - frames).mean()
    assert err > 2.0 and f"video av1 yuv420p crf 30: MAE {err:.3f}" in printed


@pytest.mark.parametrize("flags, message", [
    (["--lossless", "--crf", "3"], "--lossless fixes the encoder's quality"),
    (["--lossless", "--vcodec", "av1"], "--vcodec av1 has no exact mode"),
    (["--crf", "60"], "--crf for --vcodec h264 must be in 0..51"),
    (["--vcodec", "av1", "--crf", "0"], "--crf for --vcodec av1 must be in 1..63"),
])
def test_bad_codec_flags_are_one_error_line(crafter_src, tmp_path, capsys, flags, message):
    src, _ = crafter_src
    assert export_cli(["lerobot", str(src), "--out", str(tmp_path / "lr"), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not (tmp_path / "lr").exists()


def test_fidelity_against_hand_computed_values():
    src = np.zeros((1, 2, 2, 3), np.uint8)
    dec = src.copy()
    dec[0, 0, 0] = [3, 0, 0]  # one channel off by 3: 12 values, |e| sum 3, e^2 sum 9
    got = fidelity(pixel_errors(src, dec))
    assert got["mae"] == pytest.approx(3 / 12) and got["max"] == 3
    assert got["psnr"] == pytest.approx(10 * np.log10(255**2 / (9 / 12)))
    assert fidelity(pixel_errors(src, src))["psnr"] == float("inf")


def test_settings_resolution():
    assert video_settings().describe() == "h264 yuv444p crf 0"
    assert video_settings(lossless=True).exact and video_settings("h264", lossless=True).encoder == "libx264rgb"
    assert video_settings("av1").describe() == "av1 yuv420p crf 30"


def test_the_export_summary_still_reads_as_the_dataset_root(tmp_path):
    """export_lerobot returned the root path before it measured fidelity; its summary is a
    path-like for callers that pass the result on (os.fspath, Path, shutil)."""
    import os
    from pathlib import Path

    from collect.lerobot import ExportSummary, VideoSettings

    s = ExportSummary(out=tmp_path / "lr", video=VideoSettings("h264", "libx264", "yuv444p",
                                                                "yuv444p", 0),
                      frames=1, mae=0.0, max_error=0.0, psnr=float("inf"), video_bytes=1,
                      total_bytes=1, source_bytes=1)
    assert os.fspath(s) == str(tmp_path / "lr") and Path(s) == tmp_path / "lr"
