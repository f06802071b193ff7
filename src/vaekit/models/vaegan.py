"""VAE-GAN (Larsen, Sønderby, Larochelle & Winther 2016, "Autoencoding beyond pixels using a
learned similarity metric"): a VAE whose decoder is also the generator of a GAN.

    x (B, C, H, W) -encoder-> q(z|x) -> z -decoder-> x~ = E[p(x|z)]       the usual VAE parts
    z_p ~ p(z)                       -decoder-> x_p                        prior samples
    discriminator([x, x~, x_p]) -> features Dis_l (3B, F), logits (3B,)

The discriminator's last convolution Dis_l is the learned similarity metric: the reconstruction
is scored as -log N(Dis_l(x) | Dis_l(x~), I) instead of (or besides) pixel by pixel. The model
itself is an ordinary `VAE` with the discriminator as one more submodule, so sampling,
reconstruction, the ELBO and every task work on it unchanged; the three losses and the three
optimizers live in `vaekit.engine.adversarial`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from vaekit.models.likelihoods import Likelihood
from vaekit.models.priors import StandardNormal
from vaekit.models.vae import VAE


@dataclass
class DiscriminatorOutput:
    features: torch.Tensor  # Dis_l(x), the last convolution's activations, (B, F)
    logits: torch.Tensor  # log-odds that each image is real, (B,)


class Discriminator(nn.Module):
    """DCGAN-style (Radford et al. 2016): one 4x4 stride-2 convolution + LeakyReLU(0.2) per width,
    then a linear real/fake logit. No batch norm, so an image's score does not depend on the rest
    of its batch (real and generated images share one forward pass)."""

    def __init__(self, image_shape: tuple[int, int, int], widths: tuple[int, ...]):
        super().__init__()
        c, h, w = image_shape
        layers: list[nn.Module] = []
        for width in widths:
            layers += [nn.Conv2d(c, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c, h, w = width, h // 2, w // 2
        if h < 1 or w < 1:
            from vaekit.errors import ConfigError

            raise ConfigError(f"{len(widths)} discriminator widths halve a {image_shape[1]}x{image_shape[2]} image "
                              "to nothing; give fewer --disc-widths")
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(c * h * w, 1)

    def forward(self, x: torch.Tensor) -> DiscriminatorOutput:
        f = self.features(x)  # (B, widths[-1] * H/2^L * W/2^L)
        return DiscriminatorOutput(f, self.head(f).squeeze(-1))


class MLPDiscriminator(nn.Module):
    """Fully connected layers + LeakyReLU(0.2), one per width, then a linear logit: for small images
    on a CPU, where it costs a fraction of the convolutional one (the original GAN's choice for MNIST)."""

    def __init__(self, image_shape: tuple[int, int, int], widths: tuple[int, ...]):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        n = math.prod(image_shape)
        for width in widths:
            layers += [nn.Linear(n, width), nn.LeakyReLU(0.2)]
            n = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(n, 1)

    def forward(self, x: torch.Tensor) -> DiscriminatorOutput:
        f = self.features(x)  # (B, widths[-1])
        return DiscriminatorOutput(f, self.head(f).squeeze(-1))


class VAEGAN(VAE):
    """A `VAE` plus a `Discriminator`; see the module docstring for the data flow."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, prior: StandardNormal, likelihood: Likelihood,
                 image_shape: tuple[int, int, int], discriminator: Discriminator | MLPDiscriminator):
        super().__init__(encoder, decoder, prior, likelihood, image_shape)
        self.discriminator = discriminator
