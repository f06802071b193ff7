"""Pixel likelihoods p(x | z), read from the decoder's output tensor.

Every likelihood takes decoder outputs `params` of shape (..., P*C, H, W), where P is its
`params_per_channel`, and images `x` of shape (B, C, H, W) with pixels in [0, 1] whose
batch broadcasts against the trailing batch dim of `params` (so IWAE can pass (k, B, ...)).
`log_prob_pixels` returns (..., C, H, W) in nats; `log_prob` sums it over pixels, optionally
weighting each pixel (the occlusion mechanism weights occluded and visible regions differently).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vaekit.models.distributions import LOG_2PI, at_least_fp32


class Likelihood(nn.Module):
    params_per_channel: int = 1
    discrete: bool = True  # log_prob is a log-probability mass (so bits/dim need no bin width)

    def log_prob_pixels(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def log_prob(self, params: torch.Tensor, x: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        per_pixel = self.log_prob_pixels(at_least_fp32(params), at_least_fp32(x))  # summed over many pixels
        return (per_pixel if weights is None else per_pixel * weights).sum((-3, -2, -1))

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """The expected image in [0, 1], (..., C, H, W): what reconstructions show."""
        raise NotImplementedError

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError


class Bernoulli(Likelihood):
    """Binary pixels: params are logits. Scores binarized images, as the MNIST literature does."""

    def log_prob_pixels(self, params, x):
        return -F.binary_cross_entropy_with_logits(params, x.expand_as(params), reduction="none")

    def mean(self, params):
        return torch.sigmoid(params)

    def sample(self, params, generator=None):
        return torch.bernoulli(torch.sigmoid(params), generator=generator)


class Gaussian(Likelihood):
    """Continuous pixels: N(x; mu, sigma^2). Fixed sigma (P=1), or a learned per-pixel sigma (P=2)."""

    discrete = False

    def __init__(self, std: float | None = 0.1, min_log_std: float = -5.0):
        super().__init__()
        self.std = std
        self.min_log_std = min_log_std
        self.params_per_channel = 1 if std is not None else 2

    def _split(self, params):
        if self.std is not None:
            return params, torch.full_like(params, math.log(self.std))
        mu, log_std = params.unflatten(-3, (2, -1)).unbind(-4)
        return mu, log_std.clamp(min=self.min_log_std)

    def log_prob_pixels(self, params, x):
        mu, log_std = self._split(params)
        return -(0.5 * ((x - mu) * torch.exp(-log_std)) ** 2 + log_std + 0.5 * LOG_2PI)

    def mean(self, params):
        return self._split(params)[0].clamp(0, 1)

    def sample(self, params, generator=None):
        mu, log_std = self._split(params)
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        return (mu + log_std.exp() * eps).clamp(0, 1)


class DiscretizedLogisticMixture(Likelihood):
    """8-bit pixels: a mixture of K logistics discretized to 256 bins, per channel
    (Salimans et al. 2017, PixelCNN++, without the channel coupling). Gives bits/dim.
    params per channel: K mixture logits, K means, K log-scales (P = 3K).
    """

    BINS = 256

    def __init__(self, components: int = 5, min_log_scale: float = -7.0):
        super().__init__()
        self.components = components
        self.min_log_scale = min_log_scale
        self.params_per_channel = 3 * components

    def _split(self, params):
        # (..., 3K*C, H, W) -> three tensors of (..., K, C, H, W)
        logits, means, log_scales = params.unflatten(-3, (3, self.components, -1)).unbind(-5)
        return logits, means, log_scales.clamp(min=self.min_log_scale)

    def log_prob_pixels(self, params, x):
        logits, means, log_scales = self._split(params)
        xs = (2 * x - 1).unsqueeze(-4)  # [-1, 1], (B, 1, C, H, W)
        half_bin = 1.0 / (self.BINS - 1)
        inv_s = torch.exp(-log_scales)
        centered = xs - means
        plus_in = inv_s * (centered + half_bin)
        min_in = inv_s * (centered - half_bin)
        log_cdf_plus = plus_in - F.softplus(plus_in)  # bin 0: log sigmoid(plus_in)
        log_one_minus_cdf_min = -F.softplus(min_in)  # bin 255
        cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
        mid_in = inv_s * centered
        log_pdf_mid = mid_in - log_scales - 2 * F.softplus(mid_in) + math.log(2 * half_bin)
        log_mass = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)), log_pdf_mid)
        log_mass = torch.where(xs < -0.999, log_cdf_plus, torch.where(xs > 0.999, log_one_minus_cdf_min, log_mass))
        return torch.logsumexp(log_mass + F.log_softmax(logits, dim=-4), dim=-4)  # (..., C, H, W)

    def mean(self, params):
        logits, means, _ = self._split(params)
        weights = torch.softmax(logits, dim=-4)
        return ((weights * means).sum(-4).clamp(-1, 1) + 1) / 2

    def sample(self, params, generator=None):
        logits, means, log_scales = self._split(params)
        k = torch.multinomial(torch.softmax(logits, -4).movedim(-4, -1).reshape(-1, self.components), 1,
                              generator=generator).view(logits.shape[:-4] + logits.shape[-3:]).unsqueeze(-4)
        mu = means.gather(-4, k).squeeze(-4)
        s = log_scales.gather(-4, k).squeeze(-4).exp()
        u = torch.rand(mu.shape, generator=generator, dtype=mu.dtype).clamp(1e-5, 1 - 1e-5)
        xs = (mu + s * (torch.log(u) - torch.log1p(-u))).clamp(-1, 1)
        return torch.round((xs + 1) / 2 * (self.BINS - 1)) / (self.BINS - 1)
