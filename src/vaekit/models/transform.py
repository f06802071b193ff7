"""Learned transform codecs: a VAE whose latent is quantized and entropy coded (lossy compression).

Ballé, Laparra & Simoncelli, "End-to-end optimized image compression", ICLR 2017 (factorized);
Ballé, Minnen, Singh, Hwang & Johnston, "Variational image compression with a scale hyperprior",
ICLR 2018; with the predicted mean of Minnen, Ballé & Toderici, NeurIPS 2018 (mean-scale).

    x (B, C, H, W) in [0, 1] -(- 1/2)-g_a-> y (B, M, H/16, W/16) * gain[q] = y'
    factorized:  y' -round-> y^ coded with a FactorizedDensity per channel
    hyperprior:  y' -h_a-> z (B, N, H/64, W/64) -round-> z^ (FactorizedDensity)
                 z^ -h_s-> mean, scale of y';  y' - mean -round-> symbols under N(0, scale)
    y^ / gain[q] (learned inverse gain) -g_s-(+ 1/2)-> x^ (B, C, H, W)

g_a and g_s are four 5x5 stride-2 (transposed) convolutions with GDN / inverse GDN between them;
h_a and h_s are 3x3 + two 5x5 stride-2 (transposed) convolutions with leaky ReLUs. With
`shortcut="dct"` a learned linear block transform runs beside g_a and g_s (see dct_shortcuts).

Several quality levels share one network: the gain vectors of Cui et al., "Asymmetric gained deep
image compression with continuous rate adaptation", CVPR 2021. Quality q scales the latent
channel-wise before rounding (a finer or coarser quantization step), and the training loss of each
image uses its own lambda[q] (see `vaekit.losses.rate_distortion_loss`); every quality level is
trained at once, at the cost of one model.

Training relaxes rounding to additive uniform noise for the rate terms; the synthesis sees the
rounded latents through a straight-through gradient ("mixed quantization", Minnen & Singh, ICIP
2020), which closes most of the train/test gap in short runs. `eval()` rounds everywhere.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vaekit.models.entropy import SCALE_MAX, SCALE_MIN, FactorizedDensity, gaussian_likelihood

FACTORIZED_SUPPORT = 255  # factorized-coded symbols are clamped to -255..255
GAUSSIAN_SUPPORT = 1023  # Gaussian-coded symbols to -1023..1023 (both far beyond what a trained model emits)
KINDS = ("factorized", "hyperprior")
SHORTCUTS = ("none", "dct")
BLOCK = 16  # g_a's total stride: one latent position per 16x16 block of pixels
SHORTCUT_SCALE = 20.0  # the shortcut's y is the DCT times this: a quantization step of 1/20 at the top quality
INIT_LATENT_SCALE = 100.0  # the analysis' last layer starts this much larger than PyTorch's default


@dataclass
class CodecOutput:
    """One pass of a transform codec; `vaekit.losses.rate_distortion_loss` reads it."""

    x_hat: torch.Tensor  # reconstruction (B, C, H, W), not clamped
    likelihoods: dict[str, torch.Tensor]  # bin probabilities of each coded latent, e.g. {"y": (B, M, h, w)}
    quality: torch.Tensor  # quality index per image (B,), 0 = the lowest rate

    @property
    def rate_bits(self) -> torch.Tensor:
        """Estimated code length per image, (B,): -sum log2 P over every coded latent."""
        return sum(-torch.log2(p).flatten(1).sum(1) for p in self.likelihoods.values())


class GDN(nn.Module):
    """Simplified generalized divisive normalization (Johnston et al., CVPR 2019):
    y_i = x_i / (beta_i + sum_j gamma_ij |x_j|); `inverse` multiplies instead (IGDN)."""

    def __init__(self, channels: int, inverse: bool = False):
        super().__init__()
        self.inverse = inverse
        self.beta = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(0.1 * torch.eye(channels)[:, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = F.conv2d(x.abs(), self.gamma.abs(), self.beta.abs() + 1e-6)
        return x * norm if self.inverse else x / norm


def _down(c_in: int, c_out: int, k: int = 5) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, stride=2, padding=k // 2)


def _up(c_in: int, c_out: int, k: int = 5) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(c_in, c_out, k, stride=2, padding=k // 2, output_padding=1)


def dct_matrix(n: int) -> torch.Tensor:
    """The orthonormal DCT-II, (n, n): row k is the k-th cosine basis vector."""
    k, i = torch.arange(n)[:, None].double(), torch.arange(n)[None, :].double()
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    d[0] /= math.sqrt(2)
    return d.float()


def lowest_dct_bases(channels: int, count: int) -> torch.Tensor:
    """(count, channels, BLOCK, BLOCK): orthonormal 2-D DCT bases of a decorrelated colour space (luma,
    then two opponent colours), lowest frequencies first, luma before chroma (as JPEG spends its bits);
    zero where count exceeds channels * BLOCK^2."""
    colours = torch.tensor([[1.0, 1, 1], [1, 0, -1], [1, -2, 1]])
    colours = colours / colours.norm(dim=1, keepdim=True) if channels == 3 else torch.eye(channels)
    d = dct_matrix(BLOCK)
    order = sorted(((u + v + 1) * (1 if c == 0 else 3), c, u, v)
                   for c in range(channels) for u in range(BLOCK) for v in range(BLOCK))
    bases = torch.zeros(count, channels, BLOCK, BLOCK)
    for row, (_, c, u, v) in enumerate(order[:count]):
        bases[row] = colours[c][:, None, None] * torch.outer(d[u], d[v])
    return bases


class BlockTransform(nn.Module):
    """A learned linear map of each 16x16 block of pixels (C * 256 values) to `latent` values, or back
    (`inverse`): a stride-16 convolution (transposed), computed as one matrix product, which was
    about 5x faster here than the convolution layers. weight: (latent, C * 256), a block's values
    in (c, row, col) order."""

    def __init__(self, weight: torch.Tensor, channels: int, inverse: bool = False):
        super().__init__()
        self.weight, self.channels, self.inverse = nn.Parameter(weight), channels, inverse

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        if self.inverse:  # (B, latent, h, w) -> (B, C, 16h, 16w)
            b, _, h, w = v.shape
            blocks = v.permute(0, 2, 3, 1) @ self.weight
            return blocks.reshape(b, h, w, self.channels, BLOCK, BLOCK).permute(0, 3, 1, 4, 2, 5).reshape(
                b, self.channels, h * BLOCK, w * BLOCK)
        b, c, height, width = v.shape
        h, w = height // BLOCK, width // BLOCK
        blocks = v.reshape(b, c, h, BLOCK, w, BLOCK).permute(0, 2, 4, 1, 3, 5).reshape(b, h, w, c * BLOCK * BLOCK)
        return (blocks @ self.weight.t()).permute(0, 3, 1, 2).contiguous()


def dct_shortcuts(channels: int, latent: int) -> tuple[BlockTransform, BlockTransform]:
    """A linear shortcut beside g_a and its mirror beside g_s: a learned block transform, one latent
    vector per 16x16 block, that starts as the `latent` lowest-frequency DCT coefficients (scaled by
    SHORTCUT_SCALE) and its inverse.

    Why: before a codec can save bits it must compact the image's energy into few latents, and the
    nonlinear transforms learn that slowly (Li et al., "On disentangled training for nonlinear
    transform in learned image compression", ICLR 2025, add a linear wavelet transform beside them
    and train twice as fast). A DCT does it from the first step, as in JPEG; the nonlinear
    transforms then learn only what it misses."""
    bases = lowest_dct_bases(channels, latent).flatten(1)
    return (BlockTransform(bases * SHORTCUT_SCALE, channels),
            BlockTransform(bases / SHORTCUT_SCALE, channels, inverse=True))


# quantize(v, mean or None, support) -> (what the rate is measured on, what the synthesis sees)
Quantizer = Callable[[torch.Tensor, "torch.Tensor | None", int], tuple[torch.Tensor, torch.Tensor]]


def around_mean(rounding: Callable[[torch.Tensor], torch.Tensor], v: torch.Tensor,
                mean: torch.Tensor | None) -> torch.Tensor:
    """rounding(v - mean) + mean: Gaussian-coded latents are rounded as offsets from their mean."""
    return rounding(v) if mean is None else rounding(v - mean) + mean


def rounded(v: torch.Tensor, mean: torch.Tensor | None, support: int) -> tuple[torch.Tensor, torch.Tensor]:
    """What the coder does: round around the mean, clamped to the coder's range; both terms see it."""
    r = around_mean(lambda c: torch.round(c).clamp(-support, support), v, mean)
    return r, r


def _noisy(v: torch.Tensor, mean: torch.Tensor | None,
           generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Training's relaxation: the rate sees v + uniform noise, the synthesis v rounded around the mean
    with a straight-through gradient."""
    noise = torch.rand(v.shape, generator=generator, dtype=v.dtype, device=v.device) - 0.5
    return v + noise, around_mean(lambda c: c + (torch.round(c) - c).detach(), v, mean)


class TransformCodec(nn.Module):
    """kind: 'factorized' or 'hyperprior'; channels N (transforms), latent M (y channels);
    lambdas: one rate-distortion trade-off per quality level, lowest rate first; shortcut: 'none'
    or 'dct' (a linear block transform beside g_a and g_s, see dct_shortcuts)."""

    def __init__(self, image_shape: tuple[int, int, int], kind: str, channels: int, latent: int,
                 lambdas: tuple[float, ...], shortcut: str = "none"):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        if shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut must be one of {SHORTCUTS}")
        self.image_shape, self.kind, self.lambdas = tuple(image_shape), kind, tuple(float(v) for v in lambdas)
        c, n, m = image_shape[0], channels, latent
        self.g_a = nn.Sequential(_down(c, n), GDN(n), _down(n, n), GDN(n), _down(n, n), GDN(n), _down(n, m))
        self.g_s = nn.Sequential(_up(m, n), GDN(n, True), _up(n, n), GDN(n, True), _up(n, n), GDN(n, True),
                                 _up(n, c))
        self.shortcuts = nn.ModuleList(dct_shortcuts(c, m) if shortcut == "dct" else [])  # [beside g_a, beside g_s]
        with torch.no_grad():
            if self.shortcuts:  # the transforms start as the DCT; the nonlinear branches start at zero
                for layer in (self.g_a[-1], self.g_s[-1]):
                    layer.weight.zero_()
                    layer.bias.zero_()
            else:  # y starts with a std of ~4, not ~0.04: rounding passes information from step one
                self.g_a[-1].weight.mul_(INIT_LATENT_SCALE)
                self.g_a[-1].bias.mul_(INIT_LATENT_SCALE)
        ratio = torch.tensor([v / max(self.lambdas) for v in self.lambdas]).sqrt().log()  # step ~ 1/sqrt(lambda)
        self.log_gain = nn.Parameter(ratio[:, None].repeat(1, m))  # (Q, M)
        self.log_inverse_gain = nn.Parameter(-ratio[:, None].repeat(1, m))
        if kind == "hyperprior":
            self.h_a = nn.Sequential(nn.Conv2d(m, n, 3, padding=1), nn.LeakyReLU(), _down(n, n), nn.LeakyReLU(),
                                     _down(n, n))
            self.h_s = nn.Sequential(_up(n, n), nn.LeakyReLU(), _up(n, n), nn.LeakyReLU(),
                                     nn.Conv2d(n, 2 * m, 3, padding=1))
            self.density = FactorizedDensity(n)  # of z
        else:
            self.density = FactorizedDensity(m)  # of y
        self.factor = 64 if kind == "hyperprior" else 16  # image sides are padded to a multiple of this

    @property
    def qualities(self) -> int:
        return len(self.lambdas)

    def init_output_bias(self, mean_image: torch.Tensor) -> None:
        """The trainer's hook for VAEs with a Bernoulli decoder; nothing to do here."""

    # the three stages the codec (vaekit.codecs.lossy) runs separately: analysis, hyper, synthesis
    def analysis(self, x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) in [0, 1], sides multiples of 16 -> y' = g_a(x - 1/2) * gain (B, M, H/16, W/16)."""
        x = x - 0.5
        y = self.g_a(x) + self.shortcuts[0](x) if self.shortcuts else self.g_a(x)
        return y * self.log_gain[quality].exp()[:, :, None, None]

    def synthesis(self, y_hat: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        """y^ (B, M, h, w) -> x^ (B, C, 16h, 16w), around [0, 1] (not clamped)."""
        y = y_hat * self.log_inverse_gain[quality].exp()[:, :, None, None]
        return (self.g_s(y) + self.shortcuts[1](y) if self.shortcuts else self.g_s(y)) + 0.5

    def hyper_params(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z^ (B, N, h, w) -> mean and scale of y' (B, M, 4h, 4w); scale in [SCALE_MIN, SCALE_MAX]."""
        mean, raw = self.h_s(z_hat).chunk(2, dim=1)
        return mean, (SCALE_MIN + F.softplus(raw)).clamp(max=SCALE_MAX)

    def forward(self, x: torch.Tensor, quality: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> CodecOutput:
        """x (B, C, H, W) in [0, 1] (padded to a multiple of `factor` by replication, cropped back).
        quality: index per image (default: the highest). In training mode latents get uniform
        noise (rate) and straight-through rounding (synthesis); in eval mode they are rounded."""
        b, _, h, w = x.shape
        quality = torch.full((b,), self.qualities - 1, dtype=torch.long) if quality is None else quality
        hp, wp = -h % self.factor, -w % self.factor
        xp = F.pad(x, (0, wp, 0, hp), mode="replicate") if hp or wp else x
        y = self.analysis(xp, quality)
        z = self.h_a(y) if self.kind == "hyperprior" else None
        if self.training:
            x_hat, likelihoods = self.decode_latents(y, z, quality, lambda v, mean, _: _noisy(v, mean, generator))
        else:
            x_hat, likelihoods = self.decode_latents(y, z, quality, rounded)
        return CodecOutput(x_hat[:, :, :h, :w], likelihoods, quality)

    def decode_latents(self, y: torch.Tensor, z: torch.Tensor | None, quality: torch.Tensor,
                       quantize: Quantizer) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Unquantized latents y' (and z, hyperprior only) -> x^ (uncropped) and the bin probabilities
        of each coded latent, with `quantize` standing in for rounding: training (noise), the coder
        (`rounded`) and encoder-side refinement (vaekit.codecs.refine) each pass their own."""
        if self.kind == "factorized":
            y_rate, y_hat = quantize(y, None, FACTORIZED_SUPPORT)
            return self.synthesis(y_hat, quality), {"y": self.density.likelihood(y_rate)}
        z_rate, z_hat = quantize(z, None, FACTORIZED_SUPPORT)
        mean, scale = self.hyper_params(z_hat)
        y_rate, y_hat = quantize(y, mean, GAUSSIAN_SUPPORT)
        return self.synthesis(y_hat, quality), {"y": gaussian_likelihood(y_rate, scale, mean),
                                                "z": self.density.likelihood(z_rate)}

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, quality: int | None = None) -> torch.Tensor:
        """The decoded image at a quality level (rounded latents), (B, C, H, W) clamped to [0, 1]."""
        q = None if quality is None else torch.full((len(x),), quality, dtype=torch.long)
        was = self.training
        self.eval()
        out = self(x, q).x_hat.clamp(0, 1)
        self.train(was)
        return out
