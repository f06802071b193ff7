"""Lossless coding of images with a VAE: bits-back ANS (BB-ANS; Townsend, Bird & Barber, ICLR 2019).

For one chunk of images x, the encoder does, on one ANS stack:

    y = pop    q(y | x)    # a discretized latent, decoded from the bits already there ("bits back")
    push x under p(x | y)
    push y under p(y)

and the decoder undoes it in reverse order (pop y, pop x, push y under q(y | x)). Each image
costs -log p(x | y) - log p(y) + log q(y | x) bits, the negative ELBO, on average. Chunks are
chained on one stack, so only the first chunk needs bits to pop from: the first images, coded
with a classic codec at the bottom of the stack (`vaekit.codecs.seeds`, as HiLLoC does). The
latent is discretized as the paper does: 2**latent_bits bins of equal mass under the prior, so
p(y) is uniform, and the posterior is the Gaussian's mass on each bin. A hierarchical model's
groups are coded one after another, each with the bins of its conditional prior p(z_i | z_<i)
(see `vaekit.codecs.chains`).

The model runs in float64 and its outputs are rounded with `on_grid` before the probability
tables are built, one thread, from the same chunk shapes on both sides: that makes the tables
the same at both ends whatever the thread count (see `vaekit.codecs.ans.on_grid`).
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch

from vaekit.codecs.ans import AnsCoder, Codec, categorical, initial_words, on_grid, one_thread, uniform
from vaekit.codecs.chains import latent_chain
from vaekit.codecs.pixels import pixel_coding
from vaekit.codecs.seeds import seed_coding
from vaekit.errors import VaekitError
from vaekit.models.vae import ImageVAE

LATENT_BITS = 10  # latent bins per dimension: 2**10
CHUNK_CAP = 32  # images coded together at most (one network pass each way)
SCHEDULE_SAFETY = 0.8  # a chunk pops at most this fraction of the bits on the stack (estimated)


def bits_back(prior: Codec, likelihood, posterior) -> Codec:
    """Compose a latent-variable codec from three parts (craystack's `bb_ans`).

    prior: Codec of y; likelihood(y) -> Codec of x; posterior(x) -> Codec of y.
    """

    def push(coder, x):
        y = posterior(x).pop(coder)
        likelihood(y).push(coder, x)
        prior.push(coder, y)

    def pop(coder):
        y = prior.pop(coder)
        x = likelihood(y).pop(coder)
        posterior(x).push(coder, y)
        return x

    return Codec(push, pop)


class LatentBins:
    """2**bits bins of equal mass under N(0, 1) (max-entropy), per latent dimension."""

    def __init__(self, bits: int):
        self.size = 2**bits
        k = torch.arange(self.size + 1, dtype=torch.float64)
        self.edges = torch.special.ndtri(k / self.size)  # (size + 1,), from -inf to inf
        self.centers = torch.special.ndtri((k[:-1] + 0.5) / self.size)  # (size,)

    def posterior_probs(self, mean: torch.Tensor, log_var: torch.Tensor) -> np.ndarray:
        """Mass of N(mean, exp(log_var)) on each bin: (B, D) -> (B*D, size). mean and log_var are
        in units of the prior, computed from grid values (see `_grid_params`)."""
        with one_thread():
            std = torch.exp(0.5 * log_var)
            cdf = torch.special.ndtr((self.edges - mean[..., None]) / std[..., None])  # (B, D, size + 1)
            return cdf.diff(dim=-1).clamp_(min=0).reshape(-1, self.size).numpy()


def _grid_params(prior, posterior=None):
    """Prior (mean, std) and posterior relative to it, from grid-rounded network outputs:
    in units of the prior, the bins are the same standard-normal quantiles for every latent."""
    pm, plv = (torch.from_numpy(on_grid(t)) for t in prior)
    with one_thread():
        ps = torch.exp(0.5 * plv)
    if posterior is None:
        return pm, ps, None
    qm, qlv = (torch.from_numpy(on_grid(t)) for t in posterior)
    return pm, ps, ((qm - pm) / ps, qlv - plv)


class BitsBackCoder:
    """A model wrapped for bits-back coding of uint8 images (N, C, H, W) on one chained stack."""

    def __init__(self, model: ImageVAE, latent_bits: int = LATENT_BITS):
        self.model = model
        self.pixels = pixel_coding(model)
        self.chain = latent_chain(copy.deepcopy(model).double().eval())
        self.bins = LatentBins(latent_bits)
        self.latent_bits = latent_bits
        self.seed = seed_coding(self.pixels.name)

    def _z(self, prior_mean, prior_std, y):
        with one_thread():
            return prior_mean + prior_std * self.bins.centers[torch.from_numpy(y.astype(np.int64))].view_as(prior_mean)

    def posterior_codec(self, x: torch.Tensor) -> Codec:
        """Latents of images x given x: popped group by group (each group's table needs the
        latents before it), pushed all at once from the tables of the known latents."""
        n = len(x)

        def tables(pop_from=None, y=None):
            state, ys, probs, start = self.chain.start(self.pixels.model_input(x), n), [], [], 0
            for i in range(self.chain.groups):
                pm, ps, (rm, rlv) = _grid_params(self.chain.prior(state, i), self.chain.posterior(state, i))
                table = self.bins.posterior_probs(rm, rlv)
                if pop_from is not None:
                    yi = categorical(table).pop(pop_from)
                else:
                    yi, start = y[start:start + table.shape[0]], start + table.shape[0]
                ys.append(yi)
                probs.append(table)
                state = self.chain.advance(state, i, self._z(pm, ps, yi))
            return np.concatenate(ys), np.concatenate(probs)

        return Codec(lambda coder, y: categorical(tables(y=y)[1]).push(coder, y),
                     lambda coder: tables(pop_from=coder)[0])

    def likelihood_codec(self, y: np.ndarray, n: int) -> Codec:
        state, start = self.chain.start(None, n), 0
        for i in range(self.chain.groups):
            pm, ps, _ = _grid_params(self.chain.prior(state, i))
            state = self.chain.advance(state, i, self._z(pm, ps, y[start:start + pm.numel()]))
            start += pm.numel()
        return self.pixels.codec(self.chain.likelihood_params(state))

    @torch.no_grad()
    def chunk_codec(self, n: int) -> Codec:
        """The bits-back codec of n images at once (uint8 (n, C, H, W))."""
        prior = uniform(self.bins.size, n * self.chain.count)
        return bits_back(prior, lambda y: self.likelihood_codec(y, n), self.posterior_codec)

    @torch.no_grad()
    def estimated_bits(self, images: torch.Tensor, batch: int = 500) -> np.ndarray:
        """Roughly how many bits popping each image's latents takes, (N,): the entropy of each
        posterior on bins of width 1 / (2**bits * prior density), along the posterior means.
        Only the chunk sizes depend on it."""
        out = []
        for start in range(0, len(images), batch):
            x = images[start:start + batch]
            state, bits = self.chain.start(self.pixels.model_input(x), len(x)), 0.0
            for i in range(self.chain.groups):
                pm, ps, (rm, rlv) = _grid_params(self.chain.prior(state, i), self.chain.posterior(state, i))
                h = (0.5 * rlv + 0.5 * math.log(2 * math.pi * math.e) - 0.5 * rm**2 - 0.5 * math.log(2 * math.pi))
                bits = bits + (h / math.log(2) + self.latent_bits).clamp(0, self.latent_bits).sum(-1)
                state = self.chain.advance(state, i, pm + ps * rm)
            out.append(bits.numpy())
        return np.concatenate(out) if out else np.zeros(0)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> tuple[np.ndarray, list[int], int]:
        """Push every image onto one fresh stack: (its words, the chunk sizes, the seed images).

        The first images go on with the seed codec until the stack holds what the first chunk's
        latents may take (their estimated bits with a 25% margin); the rest by bits-back."""
        self.model.check_images(images.float())
        self.pixels.check(images)
        cost = self.estimated_bits(images)
        n_seed = self.seed.count_for(images, 1.25 * cost[:1].sum() + 64)
        coder = AnsCoder()
        if n_seed:
            self.seed.codec(n_seed, tuple(images.shape[1:])).push(coder, images[:n_seed])
        rest, cost = images[n_seed:], cost[n_seed:]
        chunks, start = [], 0
        while start < len(rest):
            budget = SCHEDULE_SAFETY * coder.num_valid_bits()
            n = int(np.searchsorted(np.cumsum(cost[start:start + CHUNK_CAP]), budget, side="right"))
            n = max(1, min(n, len(rest) - start))
            self.chunk_codec(n).push(coder, rest[start:start + n])
            chunks.append(n)
            start += n
        return coder.get_compressed(), chunks, n_seed

    @torch.no_grad()
    def decode(self, words: np.ndarray, chunks: list[int], n_seed: int, n_initial: int = 0) -> torch.Tensor:
        """Pop the images back off (last chunk first, the seed images last); the stack must then be
        empty, or hold the random words that files written before the seed codec started from."""
        coder = AnsCoder(words)
        decoded = [self.chunk_codec(n).pop(coder) for n in reversed(chunks)]
        shape = tuple(self.model.image_shape)
        seeded = self.seed.codec(n_seed, shape).pop(coder) if n_seed else torch.zeros(0, *shape, dtype=torch.uint8)
        decoded.append(seeded)
        if not np.array_equal(coder.get_compressed(), initial_words(n_initial)):
            raise VaekitError("the compressed data did not decode to its starting state: the file is "
                              "corrupted, or its probability tables differ from the encoder's")
        return torch.cat(decoded[::-1])
