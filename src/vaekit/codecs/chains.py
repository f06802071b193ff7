"""Latent chains: what bits-back coding needs from a model, in one small interface.

A chain has `count` latents per image in `groups` coded in order. For each group it gives a
Gaussian prior given the earlier groups and a Gaussian posterior given them and x, both as
(mean, log_var) of shape (n, d_i); `advance` feeds the group's value in, and
`likelihood_params` returns the decoder's output once every group is in. `start(x, n)` begins
a pass with images (posterior available) or without (prior only).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from vaekit.errors import VaekitError
from vaekit.models.hierarchical import HierarchicalVAE
from vaekit.models.priors import StandardNormal
from vaekit.models.vae import VAE


class SingleLatent:
    """The chain of `VAE`: one group, prior N(0, I), posterior from the encoder."""

    groups = 1

    def __init__(self, model: VAE):
        self.model = model

    @property
    def count(self) -> int:
        return self.model.latent_dim

    def start(self, x: torch.Tensor | None, n: int) -> dict:
        return {"n": n, "q": None if x is None else self.model.encode(x)}

    def prior(self, state: dict, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = torch.zeros(state["n"], self.count, dtype=torch.float64)
        return zeros, zeros

    def posterior(self, state: dict, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return state["q"].mean, state["q"].log_var

    def advance(self, state: dict, i: int, z: torch.Tensor) -> dict:
        return {**state, "z": z}

    def likelihood_params(self, state: dict) -> torch.Tensor:
        return self.model.decoder(state["z"])


class TopDownChain:
    """The latent chain of `HierarchicalVAE` (top-down inference, Ladder VAE / VDVAE style): its
    groups coarsest first, p(z_i | z_<i) and q(z_i | z_<i, x) from the shared state h, as its
    `top_down` runs them. HiLLoC (Townsend et al. 2020) codes such a model with BB-ANS this way."""

    def __init__(self, model: HierarchicalVAE):
        self.model = model
        self.steps = [(level, group) for level, groups in enumerate(model.levels) for group in groups]
        self.groups = len(self.steps)
        self.shapes = [model.sizes[len(model.sizes) - 1 - level] for level, _ in self.steps]

    @property
    def count(self) -> int:
        return self.model.zdim * sum(h * w for h, w in self.shapes)

    def start(self, x: torch.Tensor | None, n: int) -> dict:
        acts = None if x is None else self.model.bottom_up(x)
        return {"n": n, "acts": acts, "h": self.model.h_top.expand(n, -1, -1, -1)}

    def _h(self, state: dict, i: int) -> torch.Tensor:
        h = state["h"]
        return h if h.shape[-2:] == self.shapes[i] else F.interpolate(h, size=self.shapes[i], mode="nearest")

    def prior(self, state: dict, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        h = self._h(state, i)
        pm, p_logstd, state["feat"] = self.steps[i][1].prior(h).split([self.model.zdim, self.model.zdim,
                                                                         h.shape[1]], dim=1)
        return pm.flatten(1), 2 * p_logstd.flatten(1)

    def posterior(self, state: dict, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        level, group = self.steps[i]
        qm, q_logstd = group.posterior(torch.cat([self._h(state, i), state["acts"][level]], dim=1)).chunk(2, dim=1)
        return qm.flatten(1), 2 * q_logstd.flatten(1)

    def advance(self, state: dict, i: int, z: torch.Tensor) -> dict:
        group, h = self.steps[i][1], self._h(state, i)
        z = z.view(state["n"], self.model.zdim, *self.shapes[i])
        return {**state, "h": group.cell(h + state.pop("feat") + group.z_proj(z))}

    def likelihood_params(self, state: dict) -> torch.Tensor:
        return self.model.output_params(state["h"])


def latent_chain(model):
    """The chain of a model, or a clear error for a model bits-back coding cannot drive."""
    if isinstance(model, VAE) and isinstance(model.prior, StandardNormal):
        return SingleLatent(model)
    if isinstance(model, HierarchicalVAE):
        return TopDownChain(model)
    raise VaekitError(f"bits-back coding needs a VAE with a standard normal prior; this model is "
                      f"{type(model).__name__} with {type(getattr(model, 'prior', None)).__name__}")
