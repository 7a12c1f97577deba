"""Grid-aligned patch tokens: one code per tile of a grid world's frame (``FRAME_TOKENS["grid"]``).

Grid worlds draw their frames from fixed tile textures: Crafter a 9x9 grid of 7x7-pixel tiles
(a 9x7 local view over a 9x2 inventory) in its 64x64 frame, at a continuous daylight level and,
at night, with noise. The env family registers the tile side (``EnvFamily.tile_size``). This
tokenizer cuts a frame into those tiles and gives each the id of its nearest entry in a codebook
of at most ``grid_codes`` tile patches (the seed's "hidden units": k-means over tile patches),
fitted on the training episodes' frames only:

* when the training frames hold no more distinct tiles than codes, the codebook *is* those
  tiles and reconstruction of any frame made of them is exact;
* otherwise k-means (scikit-learn's ``MiniBatchKMeans``) over the distinct tiles, each weighted
  by its count, with the centroids rounded to uint8 so that decoding returns pixels.

Pixels outside the tile grid (Crafter's last row and column, never drawn) are rendered as their
mean over the training frames. Distinct tiles are found by hashing rows (``np.unique`` over a
void view), so encoding a dataset assigns each distinct tile once.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.imagine.config import WorldModelConfig, WorldModelError
from agents.imagine.frame_tokens import FrameTokens

CODEBOOK_FILE = "grid_codebook.safetensors"


def tile_grid(frame_shape: tuple[int, ...], tile: int) -> tuple[int, int]:
    """(rows, cols) of whole tiles of side ``tile`` in frames [H, W, 3] (the top-left aligned)."""
    H, W = int(frame_shape[0]), int(frame_shape[1])
    if tile < 1 or tile > min(H, W):
        raise WorldModelError(f"Tile size {tile} does not fit frames of {H}x{W} pixels; pass "
                              "--world-model.tile-size between 1 and the frame side.")
    return H // tile, W // tile


def to_tiles(frames: np.ndarray, tile: int) -> np.ndarray:
    """Frames uint8 [N, H, W, 3] -> tiles uint8 [N, h*w, tile*tile*3] (row-major grid order)."""
    N = frames.shape[0]
    h, w = tile_grid(frames.shape[1:], tile)
    x = frames[:, : h * tile, : w * tile]  # [N, h*t, w*t, 3]
    x = x.reshape(N, h, tile, w, tile, 3).transpose(0, 1, 3, 2, 4, 5)  # [N, h, w, t, t, 3]
    return np.ascontiguousarray(x).reshape(N, h * w, tile * tile * 3)


def from_tiles(tiles: np.ndarray, tile: int, margin: np.ndarray) -> np.ndarray:
    """Tiles uint8 [N, h, w, tile*tile*3] -> frames [N, H, W, 3], ``margin`` [H, W, 3] around."""
    N, h, w, _ = tiles.shape
    out = np.broadcast_to(margin, (N, *margin.shape)).copy()
    x = tiles.reshape(N, h, w, tile, tile, 3).transpose(0, 1, 3, 2, 4, 5)  # [N, h, t, w, t, 3]
    out[:, : h * tile, : w * tile] = x.reshape(N, h * tile, w * tile, 3)
    return out


def distinct_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct rows of uint8 [M, D]: ``(rows [U, D], inverse [M], counts [U])``."""
    x = np.ascontiguousarray(x)
    v = x.view(np.dtype((np.void, x.shape[1]))).ravel()
    _, first, inverse, counts = np.unique(v, return_index=True, return_inverse=True,
                                          return_counts=True)
    return x[first], inverse.ravel(), counts


def nearest(x: np.ndarray, codebook: torch.Tensor, chunk: int = 4096) -> np.ndarray:
    """Index of the nearest codebook row (squared L2) for each row of uint8 [M, D]."""
    c = codebook.float()  # [V, D]
    c2 = (c * c).sum(1)
    out = np.empty(len(x), np.int64)
    for i in range(0, len(x), chunk):
        p = torch.as_tensor(x[i:i + chunk]).float()  # [m, D]
        # |p - c|^2 = |p|^2 - 2 p.c + |c|^2; |p|^2 is the same for every code
        out[i:i + chunk] = (c2 - 2 * p @ c.T).argmin(1).numpy()
    return out


class GridFrameTokens(FrameTokens):
    """One codebook id per tile of a grid world's frame; see the module docstring.

    Args:
        codebook: uint8 [V, tile*tile*3] tile patches (row-major pixels, RGB last).
        tile: Tile side in pixels.
        margin: uint8 [H, W, 3] the picture outside the tile grid (and the frame shape).
    """

    name = "grid"

    def __init__(self, codebook: torch.Tensor, tile: int, margin: torch.Tensor) -> None:
        self.codebook = torch.as_tensor(codebook, dtype=torch.uint8)
        self.tile = int(tile)
        self.margin = torch.as_tensor(margin, dtype=torch.uint8)
        self.frame_shape = tuple(int(s) for s in self.margin.shape)  # type: ignore[assignment]
        self.grid = tile_grid(self.frame_shape, self.tile)
        self.vocab = int(self.codebook.shape[0])
        if self.codebook.shape[1] != self.tile * self.tile * 3:
            raise WorldModelError(f"Codebook rows have {self.codebook.shape[1]} values, tiles of "
                                  f"{self.tile}x{self.tile}x3 need {self.tile * self.tile * 3}.")

    @classmethod
    def fit(cls, frames: np.ndarray, cfg: WorldModelConfig, *, progress: bool = False,
            ) -> tuple[GridFrameTokens, dict[str, float]]:
        """Fit the codebook on training frames uint8 [N, H, W, 3] (``cfg.tile_size`` resolved)."""
        if cfg.tile_size is None:
            raise WorldModelError(
                "Grid tokens need a tile size, and this env family registers none "
                "(EnvFamily.tile_size); pass --world-model.tile-size N for frames drawn from "
                "N-pixel tiles, or use --world-model.tokens vqvae for frames without a grid.")
        t0 = time.process_time()
        frames = np.asarray(frames)
        tile = int(cfg.tile_size)
        tiles, _, counts = distinct_rows(to_tiles(frames, tile).reshape(-1, tile * tile * 3))
        info: dict[str, float] = {"grid/distinct_tiles": float(len(tiles)),
                                  "grid/train_tiles": float(counts.sum())}
        if len(tiles) <= cfg.grid_codes:  # every training tile gets its own code: lossless
            codebook = tiles
        else:
            from sklearn.cluster import MiniBatchKMeans
            from threadpoolctl import threadpool_limits

            rng = np.random.default_rng(cfg.seed)
            pick = (rng.choice(len(tiles), cfg.grid_fit_tiles, replace=False)
                    if len(tiles) > cfg.grid_fit_tiles else np.arange(len(tiles)))
            km = MiniBatchKMeans(n_clusters=cfg.grid_codes, random_state=cfg.seed,
                                 batch_size=4096, n_init=1, max_iter=50)
            # one thread: on a shared CPU OpenMP workers spin-wait, and the same fit (53k
            # distinct tiles, 1,024 codes) took 68 CPU s on 2 threads instead of 6 s on one
            with threadpool_limits(limits=1):
                km.fit(tiles[pick].astype(np.float32),
                       sample_weight=counts[pick].astype(np.float64))
            codebook = np.clip(np.rint(km.cluster_centers_), 0, 255).astype(np.uint8)
        margin = frames.reshape(-1, *frames.shape[1:]).mean(0).round().astype(np.uint8)
        info["grid/fit_cpu_s"] = time.process_time() - t0
        return cls(torch.as_tensor(codebook), tile, torch.as_tensor(margin)), info

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        x = np.asarray(torch.as_tensor(frames).cpu())
        if x.ndim != 4 or tuple(x.shape[1:]) != self.frame_shape:
            raise WorldModelError(f"Grid tokens were fitted on frames {self.frame_shape}, got "
                                  f"{tuple(x.shape)}.")
        h, w = self.grid
        rows, inverse, _ = distinct_rows(to_tiles(x, self.tile).reshape(-1, self.codebook.shape[1]))
        ids = nearest(rows, self.codebook)[inverse]  # each distinct tile assigned once
        return torch.as_tensor(ids).view(len(x), h, w)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        codes = torch.as_tensor(codes)
        tiles = self.codebook[codes.reshape(-1)].view(*codes.shape, -1)  # [N, h, w, t*t*3]
        return torch.as_tensor(from_tiles(tiles.numpy(), self.tile, self.margin.numpy()))

    @torch.no_grad()
    def render(self, codes: torch.Tensor, previous: torch.Tensor, source: torch.Tensor,
               ) -> torch.Tensor:
        """:meth:`decode`, with position i showing ``previous``'s tile ``source[:, i]`` where
        that is >= 0 (the pixels a copy path kept)."""
        codes = torch.as_tensor(codes)
        N, h, w = codes.shape
        tiles = self.codebook[codes.reshape(-1)].view(N, h * w, -1).clone()  # [N, h*w, t*t*3]
        prev = torch.as_tensor(to_tiles(np.asarray(torch.as_tensor(previous)), self.tile))
        src = torch.as_tensor(source).view(N, h * w)
        kept = src >= 0
        taken = prev.gather(1, src.clamp_min(0)[..., None].expand(-1, -1, prev.shape[-1]))
        tiles = torch.where(kept[..., None], taken, tiles)
        return torch.as_tensor(from_tiles(tiles.view(N, h, w, -1).numpy(), self.tile,
                                          self.margin.numpy()))

    def equivalent(self, tolerance: float) -> torch.Tensor:
        """bool [V, V]: codebook tiles within ``tolerance`` RMS pixel levels of each other."""
        c = self.codebook.float()
        return torch.cdist(c, c).pow(2) / c.shape[1] <= tolerance ** 2

    def save(self, path: Path) -> None:
        from safetensors.torch import save_file

        path.mkdir(parents=True, exist_ok=True)
        save_file({"codebook": self.codebook.contiguous(), "margin": self.margin.contiguous()},
                  str(path / CODEBOOK_FILE))
        (path / "frame_tokens.json").write_text(json.dumps(
            {"name": self.name, "frame_shape": self.frame_shape, "tile": self.tile}))

    @classmethod
    def load(cls, path: Path, meta: dict[str, Any]) -> GridFrameTokens:
        from safetensors.torch import load_file

        t = load_file(str(path / CODEBOOK_FILE))
        return cls(t["codebook"], meta["tile"], t["margin"])


def with_family_tile_size(cfg: WorldModelConfig, env: str | None) -> WorldModelConfig:
    """``cfg`` with ``tile_size`` filled from ``env``'s family (``EnvFamily.tile_size``) when the
    tokens are ``grid`` and none was given; unchanged otherwise (an unknown env leaves it None,
    and fitting then says what to pass)."""
    from dataclasses import replace

    if cfg.tokens != "grid" or cfg.tile_size is not None or not env:
        return cfg
    import byog_env

    try:
        fam = byog_env.family(env)
    except byog_env.UnknownEnvError:
        return cfg
    return replace(cfg, tile_size=fam.tile_size)
