"""Sampling, interpolation and latent traversals: what a trained model imagines."""
from __future__ import annotations

import torch

from vaekit.models.vae import ImageVAE


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (White 2016), which keeps Gaussian latents at a typical norm.
    a, b: (D,); t: (T,) -> (T, D)."""
    cos = torch.dot(a / a.norm(), b / b.norm()).clamp(-1, 1)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-4:
        return torch.lerp(a, b, t[:, None])
    return (torch.sin((1 - t) * omega)[:, None] * a + torch.sin(t * omega)[:, None] * b) / torch.sin(omega)


@torch.no_grad()
def interpolate(model: ImageVAE, a: torch.Tensor, b: torch.Tensor, steps: int = 10, spherical: bool = False) -> torch.Tensor:
    """Decode a path between the posterior means of images a and b ((C, H, W) each): (steps, C, H, W)."""
    z = model.encode(torch.stack([a, b])).mean
    t = torch.linspace(0, 1, steps)
    path = slerp(z[0], z[1], t) if spherical else torch.lerp(z[0], z[1], t[:, None])
    return model.decode(path)


@torch.no_grad()
def traverse(model: ImageVAE, dims: list[int] | None = None, steps: int = 9, span: float = 2.5,
             x: torch.Tensor | None = None) -> torch.Tensor:
    """Vary one latent dim at a time from -span to +span around the posterior mean of x (or the
    prior mean): (len(dims) * steps, C, H, W), a row per dim (the beta-VAE picture)."""
    dims = list(range(min(model.latent_dim, 10))) if dims is None else dims
    base = model.encode(x[None]).mean[0] if x is not None else torch.zeros(model.latent_dim)
    values = torch.linspace(-span, span, steps)
    z = base.repeat(len(dims) * steps, 1)
    for row, d in enumerate(dims):
        z[row * steps:(row + 1) * steps, d] = values
    return model.decode(z)


def most_active_dims(model: ImageVAE, x: torch.Tensor, n: int = 10) -> list[int]:
    """Latent dims ordered by average KL on x: the ones the model actually uses come first."""
    with torch.no_grad():
        kl = model.encode(x).kl_per_dim().mean(0)
    return kl.argsort(descending=True)[:n].tolist()
