"""Posterior inference given a partial or noisy observation of an image, with a trained VAE.

The clean image x is unknown; we observe o (the visible pixels, or a noisy copy). The model gives
p(z) and p(x | z); the observation model gives p(o | z). Self-normalized importance sampling with
the encoder as proposal estimates the posterior p(z | o). Rezende et al. (2014) fill holes by
iterating the encoder on its own completions; here that iteration only moves the proposal, and
every weighted sample of every round is kept (adaptive importance sampling), so the target stays
the exact posterior:

    x_0 = the observation (holes zeroed, as the occlusion mechanism trains the encoder to see)
    round r:  z_k ~ q(z | x_r),  log w_k = log p(o | z_k) + log p(z_k) - log q(z_k | x_r),  k = 1..K
              E[x | o] ~= sum over all rounds' samples of softmax(log w)_k E[x | z_k]
              x_{r+1} = that estimate, completed (known pixels put back)
    samples:  z drawn from the weighted set (sampling-importance-resampling)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from vaekit.errors import ConfigError
from vaekit.models.vae import VAE, ImageVAE


@dataclass
class Posterior:
    """Weighted posterior samples for a batch of B observations."""

    z: torch.Tensor  # (K, B, D)
    log_w: torch.Tensor  # (K, B), unnormalized
    means: torch.Tensor  # E[x | z_k], (K, B, C, H, W)

    @property
    def weights(self) -> torch.Tensor:
        return torch.softmax(self.log_w, dim=0)

    def mean(self) -> torch.Tensor:
        """E[x | observation], (B, C, H, W): the minimum-mean-squared-error estimate."""
        w = self.weights
        return (w.view(*w.shape, 1, 1, 1) * self.means).sum(0)

    def resample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n posterior draws of E[x | z] per image, (n, B, C, H, W)."""
        picks = torch.multinomial(self.weights.T, n, replacement=True, generator=generator)  # (B, n)
        batch = torch.arange(self.means.shape[1])
        return self.means[picks.T, batch]


def require_single_latent(model: ImageVAE, task: str) -> VAE:
    if type(model) is not VAE:
        raise ConfigError(f"{task} by posterior inference needs a VAE with one latent vector (--model mlp or conv); "
                          f"this run is a {type(model).__name__}")
    return model


@torch.no_grad()
def infer(model: VAE, start: torch.Tensor, log_obs: Callable[[torch.Tensor], torch.Tensor],
          complete: Callable[[torch.Tensor], torch.Tensor], proposals: int = 128, rounds: int = 3,
          generator: torch.Generator | None = None) -> Posterior:
    """Importance-sampled posterior (see the module docstring).

    start: (B, C, H, W), what the encoder first sees; log_obs(params (K, B, P*C, H, W)) -> log p(o | z), (K, B);
    complete(estimate) -> the next encoder input (e.g. the estimate with the known pixels put back)."""
    x, zs, log_ws, means = start, [], [], []
    for _ in range(rounds):
        q = model.encode(x)
        z = q.sample(generator, k=proposals)  # (K, B, D)
        params = model.decoder(z.flatten(0, 1)).unflatten(0, (proposals, -1))
        zs.append(z)
        log_ws.append(log_obs(params) + model.prior.log_prob(z) - q.log_prob(z))
        means.append(model.likelihood.mean(params))
        posterior = Posterior(torch.cat(zs), torch.cat(log_ws), torch.cat(means))  # every round's samples
        x = complete(posterior.mean())
    return posterior
