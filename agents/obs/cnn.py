"""A small trainable CNN: the default observation encoder, trained end to end."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from agents.obs.base import ObsEncoder, ObsEncoderError, StreamState, to_float_chw
from agents.obs.cnn_config import CNNConfig


class CNNEncoder(ObsEncoder):
    """A small CNN trained end to end; any frame size works.

    ``arch='patch'`` (default): a ``patch`` x ``patch`` stride-``patch`` conv gives one cell per
    patch (a game tile when the sizes match), 3x3 convs mix neighbouring cells, and the
    ``grid`` x ``grid`` cell grid (average-pooled to it if the frame gives another) is flattened
    into the head, which keeps *where* things are. ``arch='conv'``: Nature-DQN-like stride-2
    convs average-pooled to 4x4 (coarse layout only).

    With ``frame_delta`` the input of frame t is ``[o_t, o_t - o_{t-1}]`` (6 channels, both in
    the [0, 1] / [-1, 1] pixel scale): the delta of a clip's first frame is zero unless
    ``prev_frame`` is given, and a frame next to padding (``valid`` False on it or on its
    predecessor) gets a zero delta, so padding never leaks into a real frame's features.
    """

    def __init__(self, *, out_dim: int = 256, channels: tuple[int, ...] = (32, 64, 64),
                 frame_delta: bool = False, arch: str = "patch", patch: int = 8, grid: int = 8) -> None:
        super().__init__()
        if arch not in ("patch", "conv"):
            raise ObsEncoderError(f"arch must be 'patch' or 'conv', got {arch!r}.")
        self.frame_delta = bool(frame_delta)
        self.uses_previous_frame = self.frame_delta
        layers: list[nn.Module] = []
        c_in = 6 if self.frame_delta else 3
        for i, c in enumerate(channels):
            if arch == "patch":
                conv = (nn.Conv2d(c_in, c, kernel_size=patch, stride=patch) if i == 0
                        else nn.Conv2d(c_in, c, kernel_size=3, padding=1))
            else:
                stride = 2 if i < len(channels) - 1 else 1
                conv = nn.Conv2d(c_in, c, kernel_size=4 if stride == 2 else 3, stride=stride, padding=1)
            layers += [conv, nn.GELU()]
            c_in = c
        self.convs = nn.Sequential(*layers)
        side = grid if arch == "patch" else 4
        self.pool = nn.AdaptiveAvgPool2d(side)  # fixed grid: spatial layout kept, any H, W
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c_in * side * side, out_dim), nn.GELU())
        self.out_dim = out_dim

    @classmethod
    def from_config(cls, cfg: CNNConfig) -> CNNEncoder:  # type: ignore[override]
        """The encoder of a :class:`~agents.obs.cnn_config.CNNConfig` (out_dim None = 256)."""
        return cls(out_dim=cfg.out_dim or 256, channels=cfg.channels, frame_delta=cfg.frame_delta,
                   arch=cfg.arch, patch=cfg.patch, grid=cfg.grid)

    def encode_frames(self, frames: torch.Tensor, prev: torch.Tensor | None = None) -> torch.Tensor:
        """frames uint8 [N, H, W, 3] (and, with ``frame_delta``, their previous frames ``prev``
        uint8 [N, H, W, 3]; None = zero delta) -> float [N, out_dim]."""
        x = to_float_chw(frames)  # [N, 3, H, W]
        if self.frame_delta:
            delta = torch.zeros_like(x) if prev is None else x - to_float_chw(prev)
            x = torch.cat([x, delta], dim=1)  # [N, 6, H, W]
        return self.head(self.pool(self.convs(x)))  # [N, out_dim]

    def forward(
        self,
        frames: torch.Tensor | None,
        *,
        embedding: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
        prev_frame: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """frames uint8 [B, T, H, W, 3] -> float [B, T, out_dim] (see :class:`ObsEncoder`).

        ``prev_frame`` uint8 [B, H, W, 3]: the frame before ``frames[:, 0]`` (frame_delta only;
        None = zero delta at the first frame)."""
        if not self.frame_delta:
            return super().forward(frames, embedding=embedding, valid=valid)
        self.check_frames(frames)
        B, T = frames.shape[:2]
        if prev_frame is not None and (prev_frame.shape[0] != B or prev_frame.shape[1:] != frames.shape[2:]):
            raise ObsEncoderError(
                f"prev_frame must be uint8 [B, H, W, 3] = {(B, *frames.shape[2:])} like one frame "
                f"of the clip, got {tuple(prev_frame.shape)}; pass the last frame narrated."
            )
        first = frames[:, :1] if prev_frame is None else prev_frame[:, None]
        prev = torch.cat([first, frames[:, :-1]], dim=1)  # [B, T, H, W, 3]
        if valid is not None:
            v = valid.bool()
            ok = v.clone()
            ok[:, 1:] &= v[:, :-1]  # the frame and its predecessor are both real
            prev = torch.where(ok[:, :, None, None, None], prev, frames)  # zero delta otherwise
        flat = (B * T, *frames.shape[2:])
        feats = self.encode_frames(frames.reshape(flat), prev.reshape(flat))  # [B*T, D]
        return feats.reshape(B, T, -1)

    # ---------------------------------------------------------------- live steps
    def step(self, state: StreamState, frame: torch.Tensor | None, *,
             embedding: torch.Tensor | None = None) -> tuple[torch.Tensor, StreamState]:
        """One new frame per stream (see :meth:`ObsEncoder.step`), on a lean path when it applies.

        Live narration embeds one frame per step, where a call's cost is its op count, not its
        arithmetic: the module path (two conv modules, pool, flatten, head, the delta's cat and
        the clip checks) costs about one and a half LM decode steps of the tiny model. With ``arch='patch'``,
        the first conv is a patchify and one matmul (uint8 pixels straight in: the 1/255 scale
        and the delta's two halves folded into its weights), the pool is skipped where it is
        the identity, and oneDNN is off (its per-call setup dominates on one 8x8 grid). The
        same function up to float rounding (``tests/test_cnn_live_step.py``); any other
        configuration, training, or autograd takes the module path."""
        if frame is None or not self._lean_applies(frame):
            return super().step(state, frame, embedding=embedding)
        new = dict(state, started=torch.ones_like(state["started"]))
        prev = None
        if self.frame_delta:
            last = state.get("prev_frame")
            prev = frame if last is None else torch.where(
                state["started"].to(frame.device)[:, None, None, None], last.to(frame.device), frame)
            new["prev_frame"] = frame
        mkldnn = torch.backends.mkldnn
        was = mkldnn.enabled
        mkldnn.enabled = False
        try:
            return self._lean(frame, prev), new
        finally:
            mkldnn.enabled = was

    def _lean_applies(self, frame: torch.Tensor) -> bool:
        side = self.__dict__.get("_lean_side")
        if side is None:  # the module structure the lean path restates, checked once
            conv, P = self.convs[0], self.convs[0].stride[0]
            gelus = [self.convs[i] for i in range(1, len(self.convs), 2)] + [self.head[2]]
            ok = (conv.kernel_size == (P, P) == conv.stride and conv.padding == (0, 0)
                  and conv.bias is not None and isinstance(self.pool.output_size, int)
                  and all(type(m) is nn.GELU and m.approximate == "none" for m in gelus))
            side = self.__dict__["_lean_side"] = P * self.pool.output_size if ok else 0
        return (side > 0 and not self.training and not torch.is_grad_enabled()
                and frame.dtype == torch.uint8 and frame.dim() == 4
                and frame.shape[1] == frame.shape[2] == side and frame.shape[3] == 3)

    def _patch_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The first conv as a matmul on raw pixels: (W [k * 3 * P * P, C], bias [C]) with rows in
        (c, py, px) order per input half (the frame, then with ``frame_delta`` its predecessor),
        ``conv([x, x - p] / 255) = [x, p] @ W``. Kept while the weights are unchanged (same
        storage and version counter, as ``TokenLM.token_io`` keeps its folded tables)."""
        conv = self.convs[0]
        key = (conv.weight.data_ptr(), conv.weight._version, conv.weight.dtype)
        cached = self.__dict__.get("_patch_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        with torch.no_grad(), torch.inference_mode(False):
            w = conv.weight.reshape(conv.out_channels, 2 if self.frame_delta else 1, -1)
            halves = [w[:, 0] + w[:, 1], -w[:, 1]] if self.frame_delta else [w[:, 0]]
            folded = (torch.cat(halves, 1).T / 255.0).contiguous(), conv.bias
        self.__dict__["_patch_cache"] = (key, folded)
        return folded

    def _lean(self, frame: torch.Tensor, prev: torch.Tensor | None) -> torch.Tensor:
        """frame (and prev) uint8 [N, H, W, 3] -> float [N, out_dim] (see :meth:`step`)."""
        N, H = frame.shape[:2]
        P = self.convs[0].stride[0]
        g = H // P
        w0, b0 = self._patch_weights()

        def patches(f: torch.Tensor) -> torch.Tensor:  # [N * g * g, 3 * P * P] in (c, py, px)
            return f.reshape(N, g, P, g, P, 3).permute(0, 1, 3, 5, 2, 4).reshape(N * g * g, -1)

        x = patches(frame) if prev is None else torch.cat([patches(frame), patches(prev)], 1)
        y: Any = F.gelu(torch.addmm(b0, x.to(w0.dtype), w0))  # [N * g * g, C] cells
        y = y.view(N, g, g, -1).permute(0, 3, 1, 2)  # [N, C, g, g]
        for i in range(2, len(self.convs), 2):
            conv = self.convs[i]
            y = F.gelu(F.conv2d(y, conv.weight, conv.bias, padding=conv.padding))
        lin = self.head[1]
        return F.gelu(torch.addmm(lin.bias, y.reshape(N, -1), lin.weight.T))
