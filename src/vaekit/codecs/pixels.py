"""Pixel codecs: the likelihood p(x | z) of a chunk of images as a push/pop `Codec`.

Each takes the decoder's raw likelihood parameters (float64), rounds them to the grid and
builds the tables with one thread (see `vaekit.codecs.ans`). Only discrete likelihoods can
code pixels losslessly: Bernoulli (binary images) and the discretized logistic mixture (8 bits).
"""
from __future__ import annotations

import numpy as np
import torch

from vaekit.codecs.ans import Codec, bernoulli, categorical, on_grid, one_thread
from vaekit.errors import DataError, VaekitError
from vaekit.models.likelihoods import Bernoulli, DiscretizedLogisticMixture
from vaekit.models.vae import ImageVAE


class BinaryPixels:
    """Binarized images (pixels 0 or 255) under a Bernoulli likelihood."""

    name = "bernoulli"

    def check(self, images: torch.Tensor) -> None:
        if not bool(((images == 0) | (images == 255)).all()):
            raise DataError("a Bernoulli model codes binary images only (every pixel 0 or 255); these have "
                            "grey levels: binarize them first, or use a logistic-mixture model")

    def model_input(self, images: torch.Tensor) -> torch.Tensor:
        return (images > 0).double()

    def codec(self, params: torch.Tensor) -> Codec:
        with one_thread():
            p_one = torch.sigmoid(torch.from_numpy(on_grid(params))).numpy()
        return _mapped(bernoulli(p_one), lambda x: (x > 0).flatten().numpy(),
                       lambda s: torch.from_numpy(s.astype(np.uint8) * 255).view(params.shape))


class EightBitPixels:
    """8-bit images under the discretized logistic mixture: one 256-way table per subpixel."""

    name = "logistic-mixture"

    def __init__(self, likelihood: DiscretizedLogisticMixture):
        self.likelihood = likelihood
        j = torch.arange(1, 256, dtype=torch.float64)
        self.edges = (2 * j - 1) / 255 - 1  # bin boundaries in [-1, 1], (255,)

    def check(self, images: torch.Tensor) -> None:
        pass

    def model_input(self, images: torch.Tensor) -> torch.Tensor:
        return images.double() / 255

    def codec(self, params: torch.Tensor) -> Codec:
        """Tables in float32 (from float64 grid values): constriction keeps 24 bits of each
        probability, which float32 differences of neighbouring CDF values resolve."""
        logits, means, log_scales = self.likelihood._split(torch.from_numpy(on_grid(params)))  # (B, K, C, H, W)
        edges = self.edges.float()
        with one_thread():
            weights = torch.softmax(logits, dim=1).float()[..., None]
            inv_s = torch.exp(-log_scales).float()[..., None]
            offset = (-means * torch.exp(-log_scales)).float()[..., None]
            cdf = torch.zeros(*means.shape[:1], *means.shape[2:], len(edges) + 2)  # (B, C, H, W, 257)
            cdf[..., -1] = 1
            for k in range(means.shape[1]):
                cdf[..., 1:-1].addcmul_(weights[:, k], torch.addcmul(offset[:, k], inv_s[:, k], edges).sigmoid_())
            probs = (cdf[..., 1:] - cdf[..., :-1]).clamp_(min=0)  # (B, C, H, W, 256)
        shape = means.shape[:1] + means.shape[2:]
        return _mapped(categorical(probs.view(-1, 256).numpy()), lambda x: x.flatten().numpy(),
                       lambda s: torch.from_numpy(s.astype(np.uint8)).view(shape))


def _mapped(codec: Codec, to_symbols, from_symbols) -> Codec:
    """The same codec seen through a bijection between values and symbols."""
    return Codec(lambda coder, x: codec.push(coder, to_symbols(x)), lambda coder: from_symbols(codec.pop(coder)))


def pixel_coding(model: ImageVAE):
    """The pixel codec for a model's likelihood; only discrete likelihoods can be coded losslessly."""
    if isinstance(model.likelihood, Bernoulli):
        return BinaryPixels()
    if isinstance(model.likelihood, DiscretizedLogisticMixture):
        return EightBitPixels(model.likelihood)
    raise VaekitError(f"lossless coding needs a discrete pixel likelihood (bernoulli or logistic-mixture); "
                      f"this model's is {type(model.likelihood).__name__}")
