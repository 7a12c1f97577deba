"""A small trainable CNN: the default observation encoder, trained end to end."""
from __future__ import annotations

import torch
from torch import nn

from agents.obs.base import ObsEncoder, ObsEncoderError, to_float_chw
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
