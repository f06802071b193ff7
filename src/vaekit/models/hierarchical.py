"""A deep hierarchical VAE with top-down inference (Ladder VAE, Sønderby et al. 2016; NVAE, Vahdat &
Kautz 2020; VDVAE, Child 2021), sized for a CPU.

    x (B, C, H, W) -unshuffle, stem+cells-> activations at H/s, H/2s, ..., H/2^(L-1)s  (bottom-up)
    h = learned map at the coarsest resolution
    for each resolution, coarsest first; for each latent group there:
        p(z_i | z_<i) from h;   q(z_i | z_<i, x) from [h, activation];   h += proj(z_i);  h = cell(h)
    h -1x1 conv, shuffle-> likelihood parameters (B, P*C, H, W)

With stride s > 1 the finest level works at 1/s of the image's resolution: pixels are folded into
channels by pixel unshuffle and the likelihood parameters unfolded by pixel shuffle (as ESPCN does),
s^2 fewer positions per convolution, which is what makes a deep VAE trainable on a CPU.

The generative path is shared by the prior and the posterior, so q(z_i | .) only learns a correction
of p(z_i | .). KL terms are analytic per group for training; importance weights use the sampled log-ratio.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vaekit.errors import ConfigError
from vaekit.models.distributions import LOG_2PI, DiagonalGaussian, at_least_fp32
from vaekit.models.likelihoods import Likelihood
from vaekit.models.vae import ImageVAE, VAEOutput
from vaekit.nn.blocks import Bottleneck


def gaussian_kl(qm, q_logstd, pm, p_logstd):
    """KL(N(qm, e^q_logstd) || N(pm, e^p_logstd)) per element."""
    return -0.5 + p_logstd - q_logstd + 0.5 * (torch.exp(2 * q_logstd) + (qm - pm) ** 2) * torch.exp(-2 * p_logstd)


def gaussian_log_prob(z, m, logstd):
    return -0.5 * (((z - m) * torch.exp(-logstd)) ** 2 + 2 * logstd + LOG_2PI)


class LatentGroup(nn.Module):
    """One top-down step: prior and posterior of one group of latents (zdim channels at this
    resolution), then the update of the shared state h."""

    def __init__(self, width: int, middle: int, zdim: int, depth_scale: float, activation: str = "gelu"):
        super().__init__()
        self.zdim = zdim
        self.posterior = Bottleneck(2 * width, middle, 2 * zdim, residual=False, activation=activation)
        self.prior = Bottleneck(width, middle, 2 * zdim + width, residual=False, zero_last=True,
                                activation=activation)
        self.z_proj = nn.Conv2d(zdim, width, 1)
        with torch.no_grad():
            self.z_proj.weight.mul_(depth_scale)
        self.cell = Bottleneck(width, middle, width, last_scale=depth_scale, activation=activation)

    def forward(self, h, act=None, mode="analytic", z=None, temperature=1.0, generator=None):
        """mode: 'analytic' (sample q, return the KL), 'log_ratio' (sample q, return log q - log p at z),
        'mode' (posterior means), 'prior' (sample p at `temperature`; 0 gives its means).
        Returns the new h, the group's statistic per image (B,) or None, and z."""
        pm, p_logstd, feat = self.prior(h).split([self.zdim, self.zdim, h.shape[1]], dim=1)
        pm, p_logstd = at_least_fp32(pm), at_least_fp32(p_logstd)  # z, its KL and log-ratio in full precision
        stat = None
        if mode == "prior" or (act is None and z is None):
            if z is None:
                z = pm + temperature * torch.exp(p_logstd) * self._noise(pm, generator) if temperature else pm
        elif z is None:
            qm, q_logstd = (at_least_fp32(t) for t in self.posterior(torch.cat([h, act], dim=1)).chunk(2, dim=1))
            z = qm if mode == "mode" else qm + torch.exp(q_logstd) * self._noise(qm, generator)
            if mode == "analytic":
                stat = gaussian_kl(qm, q_logstd, pm, p_logstd).flatten(1).sum(1)
            elif mode == "log_ratio":
                stat = (gaussian_log_prob(z, qm, q_logstd) - gaussian_log_prob(z, pm, p_logstd)).flatten(1).sum(1)
        h = self.cell(h + feat + self.z_proj(z))
        return h, stat, z

    def posterior_of(self, h, act) -> DiagonalGaussian:
        qm, q_logstd = self.posterior(torch.cat([h, act], dim=1)).chunk(2, dim=1)
        return DiagonalGaussian(qm.flatten(1), 2 * q_logstd.flatten(1))

    @staticmethod
    def _noise(like, generator):
        return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)


class HierarchicalVAE(ImageVAE):
    """groups[i] latent groups at resolution H/2^(L-1-i) (coarsest first, L = len(groups));
    `encoder_blocks` residual cells per resolution on the way up; zdim latent channels per group;
    the finest level at 1/stride of the image's resolution; `activation` inside every cell."""

    # image-samples per IWAE pass: 100 to 1,000 run alike within run-to-run noise, 2,000 up to 1.4x
    # and 20,000 4-5x slower (benchmarks/iwae_chunk.py); changing it changes the draws and the
    # `vaekit eval --partial` key, so existing partial files would be refused
    samples_per_pass = 500

    def __init__(self, image_shape: tuple[int, int, int], likelihood: Likelihood, width: int = 64,
                 middle: int = 16, zdim: int = 8, groups: tuple[int, ...] = (2, 4, 4), encoder_blocks: int = 2,
                 stride: int = 1, activation: str = "gelu"):
        super().__init__(image_shape, likelihood)
        c, h, w = image_shape
        if h % stride or w % stride:
            raise ConfigError(f"model.hvae_stride {stride} must divide the image size {h}x{w}")
        self.sizes = [(h // stride, w // stride)]  # finest first
        for _ in range(len(groups) - 1):
            self.sizes.append((math.ceil(self.sizes[-1][0] / 2), math.ceil(self.sizes[-1][1] / 2)))
        depth_scale = 1 / math.sqrt(sum(groups) + encoder_blocks * len(groups))
        self.unshuffle, self.shuffle = nn.PixelUnshuffle(stride), nn.PixelShuffle(stride)
        self.stem = nn.Conv2d(c * stride**2, width, 3, padding=1)
        self.up_cells = nn.ModuleList([
            nn.Sequential(*[Bottleneck(width, middle, width, last_scale=depth_scale, activation=activation)
                            for _ in range(encoder_blocks)])
            for _ in groups])
        self.levels = nn.ModuleList([  # coarsest first
            nn.ModuleList([LatentGroup(width, middle, zdim, depth_scale, activation) for _ in range(n)])
            for n in groups])
        self.h_top = nn.Parameter(torch.zeros(1, width, *self.sizes[-1]))
        self.out = nn.Conv2d(width, likelihood.params_per_channel * c * stride**2, 1)
        self.zdim = zdim

    @property
    def latent_dim(self) -> int:
        """Size of the top group, the most abstract code (what `encode` returns)."""
        return self.zdim * self.sizes[-1][0] * self.sizes[-1][1]

    @property
    def output_bias(self) -> torch.Tensor:
        return self.out.bias

    def bottom_up(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Activations per resolution, coarsest first: [(B, width, H/(2^(L-1) s), ...), ..., (B, width, H/s, W/s)]."""
        self.check_images(x)
        h, acts = self.stem(self.unshuffle(x)), []
        for i, cells in enumerate(self.up_cells):
            if i:
                h = F.avg_pool2d(h, 2, ceil_mode=True)
            h = cells(h)
            acts.append(h)
        return acts[::-1]

    def top_down(self, batch: int, acts=None, mode="analytic", temperature=1.0, generator=None, z_top=None):
        """Run the generative path; returns (likelihood params, per-group stats, top z)."""
        h = self.h_top.expand(batch, -1, -1, -1)
        stats, top = [], None
        for level, groups in enumerate(self.levels):
            size = self.sizes[len(self.sizes) - 1 - level]
            if h.shape[-2:] != size:
                h = F.interpolate(h, size=size, mode="nearest")
            for i, group in enumerate(groups):
                given = z_top.view(batch, self.zdim, *size) if (z_top is not None and level == 0 and i == 0) else None
                act = acts[level] if acts is not None else None
                h, stat, z = group(h, act, "prior" if act is None else mode, given, temperature, generator)
                top = z if top is None else top
                if stat is not None:
                    stats.append(stat)
        return self.output_params(h), stats, top

    def output_params(self, h: torch.Tensor) -> torch.Tensor:
        """The final state -> likelihood parameters at the image's resolution (B, P*C, H, W)."""
        return self.shuffle(self.out(h))

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        acts = self.bottom_up(x)
        h = self.h_top.expand(len(x), -1, -1, -1)
        return self.levels[0][0].posterior_of(h, acts[0])

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Top-group latents (N, latent_dim) -> expected images; the lower groups take their prior means."""
        params, _, _ = self.top_down(len(z), z_top=z, temperature=0.0)
        return self.likelihood.mean(params)

    def forward(self, x, target=None, generator=None, pixel_weights=None) -> VAEOutput:
        acts = self.bottom_up(x)
        params, kls, z_top = self.top_down(len(x), acts, "analytic", generator=generator)
        log_px = self.likelihood.log_prob(params, x if target is None else target, pixel_weights)
        posterior = self.levels[0][0].posterior_of(self.h_top.expand(len(x), -1, -1, -1), acts[0])
        return VAEOutput(posterior, z_top.flatten(1), params, log_px, torch.stack(kls, dim=1))

    def inference_context(self, x):
        return self.bottom_up(x)

    def log_weights(self, x, k, generator=None, target=None, context=None) -> torch.Tensor:
        acts = context if context is not None else self.bottom_up(x)
        acts = [a.repeat(k, 1, 1, 1) for a in acts]  # (k*B, ...), sample-major
        params, ratios, _ = self.top_down(k * len(x), acts, "log_ratio", generator=generator)
        params = params.unflatten(0, (k, len(x)))
        log_px = self.likelihood.log_prob(params, x if target is None else target)
        return log_px - torch.stack(ratios).sum(0).view(k, len(x))

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        params, _, _ = self.top_down(n, temperature=temperature, generator=generator)
        return self.likelihood.mean(params)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        params, _, _ = self.top_down(len(x), self.bottom_up(x), "mode")
        return self.likelihood.mean(params)
