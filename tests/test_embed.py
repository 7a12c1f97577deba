"""agents.obs.embed / agents.obs.embedders: local checkpoints -> the dataset's embedding column."""
import json

import numpy as np
import pytest
import torch

from agents.obs import ObsEncoderConfig, ObsEncoderError, build_obs_encoder
from agents.obs.embed import cli, embed_dataset, embedding_dim
from agents.obs.embedders import load_embedder
from agents.obs.vqvae import VQVAEEncoder
from collect.dataset import WindowDataset, collate_windows, open_dataset
from collect.writer import DatasetWriter

# torch 2.13 deprecates TorchScript in favour of torch.export; the torchscript: spec still works.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:DeprecationWarning")


class Pool(torch.nn.Module):
    """[N, 3, H, W] in [0, 1] -> [N, 3 * s * s] (a stand-in for a scripted VPT)."""

    def __init__(self, side: int = 2, scale: float = 1.0) -> None:
        super().__init__()
        self.pool = torch.nn.AdaptiveAvgPool2d(side)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x).flatten(1) * self.scale


def scripted(tmp_path, name="pool.pt", **kw):
    path = tmp_path / name
    torch.jit.save(torch.jit.script(Pool(**kw)), str(path))
    return path


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "ds"
    writer = DatasetWriter(path, info={"env": "test", "policy": "random", "seed": 0})
    rng = np.random.default_rng(0)
    for i, n in enumerate([5, 7, 3, 6]):
        writer.write_episode(i, rng.integers(0, 256, (n, 12, 12, 3), dtype=np.uint8),
                             rng.integers(0, 4, n - 1), annotations=[["a tree"]] * n)
    writer.finalize()
    return path


def expected_pool(frames: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    return Pool()(x).numpy()


def test_torchscript_column_matches_direct_computation(dataset, tmp_path):
    spec = f"torchscript:{scripted(tmp_path)}"
    summary = embed_dataset(dataset, spec, batch_size=4, group_episodes=3, progress=False)
    assert summary["dim"] == 12 and summary["episodes_written"] == 4
    assert summary["frames_written"] == 21 and embedding_dim(dataset) == 12
    ds = open_dataset(dataset)
    for i in range(ds.num_episodes):
        ep = ds.episode(i)
        np.testing.assert_allclose(ep.extra["embedding"], expected_pool(ep.frames), atol=1e-6)
        assert ep.annotations[0] == ["a tree"]  # other columns untouched
    info = json.loads((dataset / "meta" / "info.json").read_text())
    assert info["embedding_encoder"]["complete"] and "done" not in info["embedding_encoder"]
    assert info["num_frames"] == 21 and "embedding" in info["columns"]
    # the precomputed encoder reads it through WindowDataset
    windows = WindowDataset(dataset, window=4, stride=4, columns=("embedding",))
    batch = collate_windows([windows[0], windows[1]])
    assert batch["embedding"].dtype == torch.float32 and batch["embedding"].shape == (2, 4, 12)
    enc = build_obs_encoder(ObsEncoderConfig(kind="precomputed",
                                             precomputed_dim=embedding_dim(dataset)))
    assert torch.equal(enc(batch["frames"], embedding=batch["embedding"]), batch["embedding"])


def test_rerun_is_a_no_op_and_other_checkpoints_need_force(dataset, tmp_path):
    spec = f"torchscript:{scripted(tmp_path)}"
    embed_dataset(dataset, spec, progress=False)
    files = sorted((dataset / "data").rglob("*.parquet"))
    mtimes = [f.stat().st_mtime_ns for f in files]
    again = embed_dataset(dataset, spec, progress=False)
    assert again["episodes_written"] == 0 and again["episodes_skipped"] == 4
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    other = f"torchscript:{scripted(tmp_path, 'double.pt', scale=2.0)}"
    with pytest.raises(ObsEncoderError, match="already has a 'embedding' column written by"):
        embed_dataset(dataset, other, progress=False)
    embed_dataset(dataset, other, force=True, progress=False)
    ep = open_dataset(dataset).episode(1)
    np.testing.assert_allclose(ep.extra["embedding"], 2 * expected_pool(ep.frames), atol=1e-6)


def test_killed_run_resumes_where_it_stopped(dataset, tmp_path):
    embedder = load_embedder(f"torchscript:{scripted(tmp_path)}", probe_shape=(12, 12))
    real_fn, calls = embedder.fn, []

    def crashing(frames):
        calls.append(len(frames))
        if len(calls) > 2:  # episodes 0 and 1 (one batch each) succeed, then the run dies
            raise KeyboardInterrupt
        return real_fn(frames)

    embedder.fn = crashing
    with pytest.raises(KeyboardInterrupt):
        embed_dataset(dataset, embedder, group_episodes=2, progress=False)
    state = json.loads((dataset / "meta" / "info.json").read_text())["embedding_encoder"]
    assert state["done"] == [0, 1] and not state["complete"]
    open_dataset(dataset).episode(2)  # no half-written file: the dataset still reads
    embedder.fn = real_fn
    summary = embed_dataset(dataset, embedder, group_episodes=2, progress=False)
    assert summary["episodes_written"] == 2 and summary["episodes_skipped"] == 2
    ds = open_dataset(dataset)
    for i in range(4):
        ep = ds.episode(i)
        np.testing.assert_allclose(ep.extra["embedding"], expected_pool(ep.frames), atol=1e-6)


def _tiny_hf(tmp_path, kind):
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        CLIPVisionModel,
        ViTConfig,
        ViTImageProcessor,
        ViTModel,
    )

    small = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                 "intermediate_size": 32, "image_size": 16, "patch_size": 8}
    torch.manual_seed(0)
    if kind == "vit":
        model, proc = ViTModel(ViTConfig(**small)), ViTImageProcessor(size={"height": 16,
                                                                           "width": 16})
    else:
        model = CLIPVisionModel(CLIPVisionConfig(**small))
        proc = CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    path = tmp_path / kind
    model.save_pretrained(path)
    proc.save_pretrained(path)
    return path, model.eval(), proc


@pytest.mark.slow  # the first transformers import takes seconds
@pytest.mark.parametrize("kind", ["vit", "clip"])
def test_hf_vision_models_from_a_local_dir(tmp_path, kind):
    path, model, proc = _tiny_hf(tmp_path, kind)
    emb = load_embedder(f"hf:{path}")
    assert emb.dim == 16
    frames = np.random.default_rng(1).integers(0, 256, (3, 12, 12, 3), dtype=np.uint8)
    with torch.no_grad():
        want = model(**proc(images=list(frames), return_tensors="pt")).pooler_output
    assert torch.allclose(emb(frames), want, atol=1e-5)


@pytest.mark.slow
def test_hf_errors(tmp_path):
    path, _, _ = _tiny_hf(tmp_path, "vit")
    (path / "preprocessor_config.json").unlink()
    with pytest.raises(ObsEncoderError, match="No image processor in"):
        load_embedder(f"hf:{path}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ObsEncoderError, match="Could not load a transformers model"):
        load_embedder(f"hf:{tmp_path / 'empty'}")


def test_vqvae_spec(tmp_path):
    enc = VQVAEEncoder(ObsEncoderConfig(kind="vqvae", vqvae_hidden=8, vqvae_codebook_size=4,
                                        vqvae_code_dim=3, vqvae_pool=1))
    frames = np.random.default_rng(0).integers(0, 256, (8, 12, 12, 3), dtype=np.uint8)
    enc.fit(frames, steps=2, batch_size=4, progress=False)
    enc.save(tmp_path / "vq")
    emb = load_embedder(f"vqvae:{tmp_path / 'vq'}")
    assert emb.dim == 3
    assert torch.equal(emb(frames), enc.encode_frames(torch.from_numpy(frames)))


def test_spec_and_dataset_errors(dataset, tmp_path):
    with pytest.raises(ObsEncoderError, match="Bad encoder spec 'clip:x'"):
        load_embedder("clip:x")
    with pytest.raises(ObsEncoderError, match="does not exist; give a local path"):
        load_embedder(f"hf:{tmp_path / 'nowhere'}")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(ObsEncoderError, match="is not a TorchScript file"):
        load_embedder(f"torchscript:{bad}")
    spec = f"torchscript:{scripted(tmp_path)}"
    with pytest.raises(ObsEncoderError, match="is not a BYOG dataset"):
        embed_dataset(tmp_path, spec, progress=False)
    with pytest.raises(ObsEncoderError, match="has no complete 'embedding' column"):
        embedding_dim(dataset)


def test_cli(dataset, tmp_path, capsys):
    assert cli([str(dataset), "--encoder", f"torchscript:{tmp_path / 'missing.pt'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Checkpoint") and "Traceback" not in err
    assert cli([str(dataset), "--encoder", f"torchscript:{scripted(tmp_path)}",
                "--batch-size", "3"]) == 0
    assert "column 'embedding' of width 12" in capsys.readouterr().out
    assert embedding_dim(dataset) == 12
