"""The posterior distribution object that `VAE.encode` returns (diffusers-style)."""
from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2 * math.pi)


def at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    """bf16 (from a --precision bf16 step) raised to fp32, for values that sums of many terms are
    made of; fp32 and the bits-back coder's fp64 pass unchanged."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


class DiagonalGaussian:
    """q(z | x) = N(mean, diag(exp(log_var))), with reparameterized sampling.

    mean, log_var: (B, D), at least fp32 (the KL is summed from them, and bf16 keeps 3 digits).
    """

    def __init__(self, mean: torch.Tensor, log_var: torch.Tensor):
        self.mean = at_least_fp32(mean)
        self.log_var = at_least_fp32(log_var).clamp(-30.0, 20.0)

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.log_var)

    def sample(self, generator: torch.Generator | None = None, k: int | None = None) -> torch.Tensor:
        """z = mean + std * eps; (B, D), or (k, B, D) when k is given. Differentiable."""
        shape = self.mean.shape if k is None else (k, *self.mean.shape)
        eps = torch.randn(shape, generator=generator, dtype=self.mean.dtype, device=self.mean.device)
        return self.mean + self.std * eps

    def mode(self) -> torch.Tensor:
        return self.mean

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z | x) summed over latent dims; z is (..., B, D) -> (..., B)."""
        return -0.5 * ((z - self.mean) ** 2 / self.log_var.exp() + self.log_var + LOG_2PI).sum(-1)

    def kl_per_dim(self) -> torch.Tensor:
        """KL(q || N(0, I)) for each latent dim, (B, D), in nats."""
        return 0.5 * (self.mean**2 + self.log_var.exp() - 1.0 - self.log_var)

    def kl_per_dim_to(self, prior: "DiagonalGaussian") -> torch.Tensor:
        """KL(q || p) for each latent dim against another diagonal Gaussian p (a learned prior), (B, D)."""
        return 0.5 * (prior.log_var - self.log_var
                      + (self.log_var.exp() + (self.mean - prior.mean) ** 2) / prior.log_var.exp() - 1.0)

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) in nats, (B,)."""
        return self.kl_per_dim().sum(-1)
