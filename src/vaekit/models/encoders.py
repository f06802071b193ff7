"""Encoders: images (B, C, H, W) in [0, 1] -> q(z | x) as a `DiagonalGaussian`."""
from __future__ import annotations

import math

import torch
from torch import nn

from vaekit.models.distributions import DiagonalGaussian


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """Kingma & Welling (2014): x -> 400 (ReLU) -> (mean, log-variance)."""

    def __init__(self, image_shape: tuple[int, int, int], hidden_dims: tuple[int, ...], latent_dim: int):
        super().__init__()
        self.net = mlp([math.prod(image_shape), *hidden_dims, 2 * latent_dim])

    def forward(self, x: torch.Tensor) -> DiagonalGaussian:
        mean, log_var = self.net(x.flatten(1)).chunk(2, dim=-1)  # (B, D) each
        return DiagonalGaussian(mean, log_var)


def pooled_size(size: int, levels: int) -> int:
    """Spatial size after `levels` ceil-mode 2x poolings, so any image size works."""
    for _ in range(levels):
        size = math.ceil(size / 2)
    return size


class ConvEncoder(nn.Module):
    """Conv 3x3 + ReLU + 2x2 max-pool per width, then fully connected to (mean, log-variance)."""

    def __init__(self, image_shape: tuple[int, int, int], widths: tuple[int, ...], latent_dim: int, fc_dim: int):
        super().__init__()
        c, h, w = image_shape
        layers: list[nn.Module] = []
        for width in widths:
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
            c = width
        self.features = nn.Sequential(*layers, nn.Flatten())
        flat = c * pooled_size(h, len(widths)) * pooled_size(w, len(widths))
        self.head = mlp([flat, fc_dim, 2 * latent_dim] if fc_dim else [flat, 2 * latent_dim])

    def forward(self, x: torch.Tensor) -> DiagonalGaussian:
        mean, log_var = self.head(self.features(x)).chunk(2, dim=-1)
        return DiagonalGaussian(mean, log_var)
