"""Decoders: latents (N, D) -> likelihood parameters (N, P*C, H, W)."""
from __future__ import annotations

import math

import torch
from torch import nn

from vaekit.models.encoders import mlp, pooled_size


class MLPDecoder(nn.Module):
    """Kingma & Welling (2014): z -> 400 (ReLU) -> P*C*H*W outputs."""

    samples_per_pass = 1000  # the fastest IWAE pass of 784-400-20 on MNIST in two runs (benchmarks/iwae_chunk.py)

    def __init__(self, image_shape: tuple[int, int, int], hidden_dims: tuple[int, ...], latent_dim: int,
                 params_per_channel: int):
        super().__init__()
        c, h, w = image_shape
        self.out_shape = (params_per_channel * c, h, w)
        self.net = mlp([latent_dim, *hidden_dims, math.prod(self.out_shape)])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.out_shape)

    @property
    def output_bias(self) -> torch.Tensor:
        return self.net[-1].bias


class ConvDecoder(nn.Module):
    """Mirror of `ConvEncoder`: fully connected to a (widths[-1], H/2^L, W/2^L) map, one stride-2
    transposed convolution per width, a 3x3 conv to the likelihood parameters, then a crop to (H, W)."""

    # IWAE pass at or near the best of 100-20,000 in two runs on MNIST (benchmarks/iwae_chunk.py): the
    # full-resolution maps of larger passes spill out of the caches (20,000 ran 3.5-3.9x slower)
    samples_per_pass = 200

    def __init__(self, image_shape: tuple[int, int, int], widths: tuple[int, ...], latent_dim: int, fc_dim: int,
                 params_per_channel: int):
        super().__init__()
        c, self.h, self.w = image_shape
        levels = len(widths)
        self.start = (widths[-1], pooled_size(self.h, levels), pooled_size(self.w, levels))
        self.fc = nn.Sequential(mlp([latent_dim, fc_dim, math.prod(self.start)] if fc_dim
                                    else [latent_dim, math.prod(self.start)]), nn.ReLU())
        layers: list[nn.Module] = []
        for w_in, w_out in zip(widths[::-1], widths[::-1][1:] + widths[:1]):
            layers += [nn.ConvTranspose2d(w_in, w_out, 4, stride=2, padding=1), nn.ReLU()]
        self.up = nn.Sequential(*layers)
        self.out = nn.Conv2d(widths[0], params_per_channel * c, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(-1, *self.start)  # (N, widths[-1], H/2^L, W/2^L)
        return self.out(self.up(h))[..., : self.h, : self.w]  # (N, P*C, H, W)

    @property
    def output_bias(self) -> torch.Tensor:
        return self.out.bias
