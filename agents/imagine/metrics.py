"""How close imagined frames are to real ones: PSNR, SSIM (pixels) and code accuracy (codes).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def psnr(pred: torch.Tensor, target: torch.Tensor, *, max_db: float = 60.0) -> torch.Tensor:
    """Per-frame PSNR (dB) of uint8 or [0, 1] frames [N, H, W, 3]; capped at ``max_db`` (an MSE
    floor) so identical frames give a finite number."""
    a, b = _unit(pred), _unit(target)
    mse = (a - b).pow(2).flatten(1).mean(1).clamp_min(10 ** (-max_db / 10))
    return -10 * torch.log10(mse)


def ssim(pred: torch.Tensor, target: torch.Tensor, *, window: int = 7, sigma: float = 1.5,
         ) -> torch.Tensor:
    """Per-frame SSIM (Wang et al. 2004) of frames [N, H, W, 3]: a Gaussian window, constants
    ``(0.01)^2`` and ``(0.03)^2`` for a dynamic range of 1, mean over channels and valid windows."""
    a = _unit(pred).permute(0, 3, 1, 2)
    b = _unit(target).permute(0, 3, 1, 2)
    C = a.shape[1]
    x = torch.arange(window, dtype=torch.float32) - (window - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = (g / g.sum())
    w = (g[:, None] * g[None, :]).expand(C, 1, window, window).contiguous()

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, groups=C)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1)


def code_accuracy(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-frame share of grid positions whose code matches: long [N, h, w] x2 -> float [N]."""
    return (pred == target).float().flatten(1).mean(1)


def _unit(x: torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(x)
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
