"""Training objectives as pure functions of model outputs (per-image values in nats)."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from vaekit.models.transform import CodecOutput
from vaekit.models.vae import ImageVAE, VAEOutput


@dataclass
class LossTerms:
    loss: torch.Tensor  # what to minimize (scalar)
    neg_elbo: torch.Tensor  # -ELBO (or -IWAE bound), batch mean, nats
    recon: torch.Tensor  # -log p(x|z), batch mean, nats
    kl: torch.Tensor  # KL(q||p), batch mean, nats


def elbo_loss(out: VAEOutput, beta: float = 1.0, free_bits: float = 0.0) -> LossTerms:
    """-(E[log p(x|z)] - beta * KL), with optional free bits (Kingma et al. 2016): each latent
    dim's batch-averaged KL counts as at least `free_bits` nats in the loss."""
    recon = -out.log_px.mean()
    kl_dims = out.kl_per_dim.mean(0)  # (D,)
    kl = kl_dims.sum()
    kl_term = kl_dims.clamp(min=free_bits).sum() if free_bits > 0 else kl
    return LossTerms(recon + beta * kl_term, (recon + kl).detach(), recon.detach(), kl.detach())


def log_mean_exp(log_w: torch.Tensor, dim: int = 0) -> torch.Tensor:
    return torch.logsumexp(log_w, dim) - math.log(log_w.shape[dim])


def iwae_loss(model: ImageVAE, x: torch.Tensor, k: int, generator: torch.Generator | None = None,
              target: torch.Tensor | None = None) -> LossTerms:
    """The importance-weighted bound with k samples (Burda et al. 2016); tighter than the ELBO
    for k > 1. The bound has no separate KL term, so `recon` carries all of it."""
    log_w = model.log_weights(x, k, generator, target)  # (k, B)
    bound = log_mean_exp(log_w).mean()
    return LossTerms(-bound, -bound.detach(), -bound.detach(), torch.zeros(()))


def log_weight_chunks(model: ImageVAE, x: torch.Tensor, k: int, generator: torch.Generator | None = None,
                      chunk: int | None = None,
                      on_chunk: Callable[[int], None] | None = None) -> Iterator[torch.Tensor]:
    """The k importance log-weights of images x, (n, B) a chunk of n samples at a time, so that k in
    the thousands fits in memory; by default a chunk holds the model's `samples_per_pass`
    image-samples. `on_chunk` gets each chunk's image-samples (n * B) as it is drawn, so a progress
    bar can move within one batch."""
    chunk = chunk or max(1, model.samples_per_pass // len(x))
    context = model.inference_context(x)
    for start in range(0, k, chunk):
        n = min(chunk, k - start)
        yield model.log_weights(x, n, generator, context=context)
        if on_chunk is not None:
            on_chunk(n * len(x))


def image_groups(model: ImageVAE, x: torch.Tensor, chunk: int | None) -> tuple[torch.Tensor, ...]:
    """A batch split so that one pass of one sample per image stays within the model's
    `samples_per_pass`: larger passes spill out of the caches and ran up to 4.8x slower
    (benchmarks/iwae_chunk.py). A caller that sets the chunk chooses the pass itself (benchmarks,
    tests), so its batch stays whole."""
    return (x,) if chunk else x.split(model.samples_per_pass)


@torch.no_grad()
def iwae_bound(model: ImageVAE, x: torch.Tensor, k: int, generator: torch.Generator | None = None,
               chunk: int | None = None, on_chunk: Callable[[int], None] | None = None) -> torch.Tensor:
    """log p(x) >= log (1/k) sum_i w_i per image, (B,), from chunks of samples (their
    log-sum-exps combine exactly)."""
    bounds = []
    for group in image_groups(model, x, chunk):
        parts = [torch.logsumexp(w, 0) for w in log_weight_chunks(model, group, k, generator, chunk, on_chunk)]
        bounds.append(torch.logsumexp(torch.stack(parts), 0) - math.log(k))
    return torch.cat(bounds)


@torch.no_grad()
def elbo_estimate(model: ImageVAE, x: torch.Tensor, k: int, generator: torch.Generator | None = None,
                  chunk: int | None = None, on_chunk: Callable[[int], None] | None = None) -> torch.Tensor:
    """The ELBO per image, (B,), averaged over k posterior samples drawn in chunks as for
    `iwae_bound` (the same generator state gives both the same samples)."""
    means = []
    for group in image_groups(model, x, chunk):
        means.append(sum(w.sum(0) for w in log_weight_chunks(model, group, k, generator, chunk, on_chunk)) / k)
    return torch.cat(means)


def rate_distortion_loss(out: CodecOutput, x: torch.Tensor, lambdas: torch.Tensor) -> LossTerms:
    """Rate + lambda * distortion for a transform codec (Ballé et al. 2017), per image
    bpp + lambda * 255^2 * MSE (CompressAI's scale for lambda), each image with its own
    lambda (B,) (its quality level). The loss to minimize is exactly that (so CompressAI's
    learning rates and gradient clipping carry over); it is reported in nats per image, as the
    negative ELBO of the equivalent VAE (uniform posterior, Gaussian likelihood of variance
    1 / (2 lambda 255^2 ln 2) per sub-pixel, constants dropped): `kl` the rate, `recon` the
    weighted distortion."""
    pixels = x.shape[-2] * x.shape[-1]
    mse = ((out.x_hat - x) ** 2).flatten(1).mean(1)  # (B,)
    objective = (out.rate_bits / pixels + lambdas * 255**2 * mse).mean()  # bpp + lambda * 255^2 * MSE
    nats = pixels * math.log(2)  # per pixel in bits -> per image in nats
    rate_nats = (out.rate_bits / pixels).mean().detach() * nats
    distortion_nats = (lambdas * 255**2 * mse).mean().detach() * nats
    return LossTerms(objective, rate_nats + distortion_nats, distortion_nats, rate_nats)


@dataclass
class VideoLossTerms:
    loss: torch.Tensor  # what to minimize (scalar)
    sse_per_frame: torch.Tensor  # squared error summed over pixels in [0, 1], mean over frames and clips
    kl_nats_per_frame: torch.Tensor  # KL(q||p) per predicted frame, nats, mean over frames and clips


def video_loss(x_hat: torch.Tensor, kl: torch.Tensor, target: torch.Tensor, beta: float) -> VideoLossTerms:
    """SVG's objective per predicted frame: the squared error summed over pixels (a Gaussian
    likelihood of fixed variance) + beta * KL(q(z_t | x_1..t) || p(z_t | x_1..t-1)).
    x_hat, target (B, T, C, H, W); kl (B, T)."""
    sse = (x_hat - target).pow(2).flatten(2).sum(-1).mean()
    kl = kl.mean()
    return VideoLossTerms(sse + beta * kl, sse.detach(), kl.detach())
