"""Priors p(z)."""
from __future__ import annotations

import torch
from torch import nn

from vaekit.models.distributions import LOG_2PI


class StandardNormal(nn.Module):
    """p(z) = N(0, I); the posterior's KL against it is analytic (`DiagonalGaussian.kl`)."""

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (...,)."""
        return -0.5 * (z**2 + LOG_2PI).sum(-1)

    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0,
               device: torch.device | str = "cpu") -> torch.Tensor:
        return temperature * torch.randn(n, self.latent_dim, generator=generator, device=device)
