"""VAE(encoder, decoder, prior, likelihood): the one model class every architecture composes into."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vaekit.errors import DataError
from vaekit.models.distributions import DiagonalGaussian
from vaekit.models.likelihoods import Bernoulli, Likelihood
from vaekit.models.priors import StandardNormal


@dataclass
class VAEOutput:
    """What one pass computes; losses and metrics read these fields (see `vaekit.losses`)."""

    posterior: DiagonalGaussian
    z: torch.Tensor  # (B, D)
    params: torch.Tensor  # likelihood parameters, (B, P*C, H, W)
    log_px: torch.Tensor  # log p(target | z), nats, (B,)
    kl_per_dim: torch.Tensor  # KL(q(z|x) || p(z)) per latent dim, nats, (B, D)

    @property
    def kl(self) -> torch.Tensor:
        return self.kl_per_dim.sum(-1)


class ImageVAE(nn.Module):
    """What every vaekit model offers: encode, decode, forward -> VAEOutput, log_weights, sample,
    reconstruct, on images (B, C, H, W) in [0, 1] of one fixed shape."""

    # image-samples per IWAE pass: bounds memory for k in the thousands and, through the caches, speed
    # (benchmarks/iwae_chunk.py: 20,000 ran 1.3-4.8x slower than the best for every model measured);
    # the default for models that name none (the conditional MLP VAEs: at or within 1% of their best)
    samples_per_pass = 500

    def __init__(self, image_shape: tuple[int, int, int], likelihood: Likelihood):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.likelihood = likelihood

    def check_images(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            got = "x".join(map(str, x.shape[1:])) if x.dim() == 4 else f"a {x.dim()}-D tensor"
            want = "x".join(map(str, self.image_shape))
            raise DataError(f"this model takes images of shape {want} (channels x height x width), got {got}")

    def inference_context(self, x: torch.Tensor):
        """What `log_weights` can reuse across chunks of samples for the same images."""
        return None

    def init_output_bias(self, mean_image: torch.Tensor) -> None:
        """Start a Bernoulli decoder at the data's mean image (logit), which skips the slow first
        phase where the decoder only learns the average digit."""
        if not isinstance(self.likelihood, Bernoulli):
            return
        bias = self.output_bias
        p = mean_image.clamp(1e-3, 1 - 1e-3)
        logits = torch.log(p) - torch.log1p(-p)  # (C, H, W)
        with torch.no_grad():
            if bias.numel() == logits.numel():
                bias.copy_(logits.flatten())
            else:  # one bias per channel, or per channel and sub-pixel of a pixel-shuffled output
                stride = math.isqrt(bias.numel() // len(logits))
                bias.copy_(F.pixel_unshuffle(logits[None], stride).mean((0, 2, 3)))


class VAE(ImageVAE):
    """Kingma & Welling (2014) with swappable parts.

    x (B, C, H, W) in [0, 1] -encoder-> q(z|x) -sample-> z (B, D) -decoder-> params -likelihood-> p(x|z)
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, prior: StandardNormal, likelihood: Likelihood,
                 image_shape: tuple[int, int, int]):
        super().__init__(image_shape, likelihood)
        self.encoder, self.decoder, self.prior = encoder, decoder, prior
        # the decoder runs once per sample, so its cost sets the fastest pass
        self.samples_per_pass = getattr(decoder, "samples_per_pass", self.samples_per_pass)

    @property
    def latent_dim(self) -> int:
        return self.prior.latent_dim

    @property
    def output_bias(self) -> torch.Tensor:
        return self.decoder.output_bias

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        self.check_images(x)
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The expected image for each latent: (N, D) -> (N, C, H, W) in [0, 1]."""
        return self.likelihood.mean(self.decoder(z))

    def forward(self, x: torch.Tensor, target: torch.Tensor | None = None, generator: torch.Generator | None = None,
                pixel_weights: torch.Tensor | None = None) -> VAEOutput:
        """One-sample ELBO terms. The encoder sees `x`; the likelihood scores `target` (default `x`),
        each pixel weighted by `pixel_weights` if given: how denoising and occlusion training plug in."""
        posterior = self.encode(x)
        z = posterior.sample(generator)
        params = self.decoder(z)
        log_px = self.likelihood.log_prob(params, x if target is None else target, pixel_weights)
        return VAEOutput(posterior, z, params, log_px, posterior.kl_per_dim())

    def inference_context(self, x: torch.Tensor) -> DiagonalGaussian:
        """What `log_weights` can reuse across chunks of samples for the same images."""
        return self.encode(x)

    def log_weights(self, x: torch.Tensor, k: int, generator: torch.Generator | None = None,
                    target: torch.Tensor | None = None, context: DiagonalGaussian | None = None) -> torch.Tensor:
        """Importance weights log p(x, z_i) - log q(z_i | x) for k posterior samples: (k, B)."""
        posterior = context or self.encode(x)
        z = posterior.sample(generator, k=k)  # (k, B, D)
        params = self.decoder(z.flatten(0, 1)).unflatten(0, (k, -1))  # (k, B, P*C, H, W)
        log_px = self.likelihood.log_prob(params, x if target is None else target)
        return log_px + self.prior.log_prob(z) - posterior.log_prob(z)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """n new images (expected values under the likelihood), (n, C, H, W) in [0, 1]."""
        device = next(self.parameters()).device
        return self.decode(self.prior.sample(n, generator, temperature, device))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decode the posterior mean: the deterministic reconstruction, (B, C, H, W)."""
        return self.decode(self.encode(x).mean)
