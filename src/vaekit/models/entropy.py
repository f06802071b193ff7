"""Learned entropy models for quantized latents (Ballé, Minnen, Singh, Hwang & Johnston, ICLR 2018).

Two densities, each giving the probability of a latent's integer bin, so that -log2 of it is the
number of bits the entropy coder will spend:

- `FactorizedDensity`: one learned, non-parametric density per channel, shared by every position
  (the "factorized prior"); used for the hyper-latent z, and for y itself in the factorized model.
- `gaussian_likelihood`: a Gaussian N(mean, scale) per element, its scale (and mean) predicted
  from z by the hyper-synthesis (the "scale hyperprior").

In training the bins are relaxed to uniform noise (y + u, u ~ U(-1/2, 1/2)): the density of the
noisy latent is the bin probability of the rounded one. At test time latents are rounded.

For coding, `SCALE_TABLE` turns each predicted scale into one of 64 fixed values (as CompressAI
does): the coder then only ever meets those exact values, so the encoder and the decoder build
the same tables even when their networks differ in the last bits (another thread count).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LIKELIHOOD_FLOOR = 1e-9  # no bin costs more than log2(1e9) ~ 30 bits in training
SCALE_MIN, SCALE_MAX, SCALE_LEVELS = 0.11, 256.0, 64
SCALE_TABLE = torch.exp(torch.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX), SCALE_LEVELS, dtype=torch.float64))


def scale_index(scales: torch.Tensor) -> torch.Tensor:
    """The index of the smallest table value >= each scale (the last one for larger scales):
    rounding up wastes a few bits at most, rounding down would be overconfident."""
    table = SCALE_TABLE.to(torch.float64)
    idx = torch.searchsorted(table, scales.to(torch.float64).contiguous())
    return idx.clamp_(max=SCALE_LEVELS - 1)


def gaussian_likelihood(y: torch.Tensor, scale: torch.Tensor, mean: torch.Tensor | None = None) -> torch.Tensor:
    """P(bin of y) under N(mean, scale): Phi((|v| + 1/2) / s) - Phi((|v| - 1/2) / s), v = y - mean,
    written with the lower tail (upper - lower of small numbers) for float accuracy."""
    v = (y - mean if mean is not None else y).abs()
    upper = torch.special.ndtr((0.5 - v) / scale)
    lower = torch.special.ndtr((-0.5 - v) / scale)
    return (upper - lower).clamp(min=LIKELIHOOD_FLOOR)


class FactorizedDensity(nn.Module):
    """Ballé et al. 2018, appendix 6.1: per channel, a cumulative c(x) = sigmoid(f_K(... f_1(x)))
    with f_k(x) = h(H_k x + b_k), h(t) = t + a_k * tanh(t), H_k >= 0 (softplus), so c is monotone.
    `filters`: the hidden widths (3, 3, 3 in the paper)."""

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        self.channels = channels
        dims = (1, *filters, 1)
        scale = init_scale ** (1 / (len(filters) + 1))
        self.matrices, self.biases, self.factors = nn.ParameterList(), nn.ParameterList(), nn.ParameterList()
        for k in range(len(filters) + 1):
            init = math.log(math.expm1(1 / scale / dims[k + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[k + 1], dims[k]), init)))
            self.biases.append(nn.Parameter(torch.empty(channels, dims[k + 1], 1).uniform_(-0.5, 0.5)))
            if k < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[k + 1], 1)))

    def logits_cdf(self, x: torch.Tensor) -> torch.Tensor:
        """x (C, 1, N) -> logit of the cumulative at x, (C, 1, N)."""
        for k, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            x = torch.matmul(F.softplus(matrix), x) + bias
            if k < len(self.factors):
                x = x + torch.tanh(self.factors[k]) * torch.tanh(x)
        return x

    def likelihood(self, y: torch.Tensor) -> torch.Tensor:
        """P(bin of y) for y (B, C, H, W): c(y + 1/2) - c(y - 1/2), computed on the side of the
        median where the sigmoids are small (accurate in the tails)."""
        b, c, h, w = y.shape
        flat = y.permute(1, 0, 2, 3).reshape(c, 1, -1)  # (C, 1, B*H*W)
        lower, upper = self.logits_cdf(flat - 0.5), self.logits_cdf(flat + 0.5)
        sign = -torch.sign(lower + upper).detach()
        p = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
        return p.reshape(c, b, h, w).permute(1, 0, 2, 3).clamp(min=LIKELIHOOD_FLOOR)

    def pmf_table(self, support: int) -> torch.Tensor:
        """Probabilities of the integer bins -support..support per channel, (C, 2*support + 1); the
        two end bins also hold the tails, since the codec clamps symbols to that range."""
        k = torch.arange(-support, support + 1, dtype=self.matrices[0].dtype, device=self.matrices[0].device)
        edges = torch.cat([k - 0.5, k[-1:] + 0.5]).expand(self.channels, 1, -1)  # (C, 1, 2S + 2)
        cdf = torch.sigmoid(self.logits_cdf(edges))[:, 0]
        cdf = torch.cat([torch.zeros_like(cdf[:, :1]), cdf[:, 1:-1], torch.ones_like(cdf[:, :1])], dim=1)
        return cdf.diff(dim=1).clamp(min=0)
