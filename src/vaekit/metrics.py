"""Honest metrics: negative ELBO and IWAE NLL in nats, bits per dimension, PSNR."""
from __future__ import annotations

import math
from typing import Callable

import torch
from tqdm.auto import tqdm

from vaekit.losses import iwae_bound
from vaekit.models.vae import ImageVAE


def bits_per_dim(nll_nats: float, dims: int, discrete: bool = True) -> float:
    """nats per image -> bits per dimension. A continuous density on [0, 1] pixels is turned into
    a probability of the 8-bit value with the bin width 1/256 (the usual dequantization convention)."""
    if not discrete:
        nll_nats += dims * math.log(256)
    return nll_nats / (dims * math.log(2))


def psnr_db(x: torch.Tensor, y: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    """Per-image PSNR for images in [0, peak], (B,)."""
    mse = ((x - y) ** 2).flatten(1).mean(1).clamp(min=1e-12)
    return 10 * torch.log10(peak**2 / mse)


SCORES = ("recon_nats", "kl_nats", "iwae_nll_nats")  # per image: -log p(x|z), KL(q||p), IWAE NLL


@torch.no_grad()
def evaluate(model: ImageVAE, images: torch.Tensor, iwae_k: int = 0, batch_size: int = 500,
             generator: torch.Generator | None = None, progress: bool = True,
             done: dict[str, list[float]] | None = None,
             on_batch: Callable[[dict[str, list[float]]], None] | None = None) -> dict:
    """Mean per-image metrics over `images` (float, (N, C, H, W), already prepared: binarized
    for Bernoulli models). ELBO with one posterior sample; IWAE NLL with k samples if k > 0.
    A long evaluation can be resumed: `done` holds the per-image scores of the first images
    from an interrupted one (with `generator` in the state it had then), and `on_batch` gets
    the scores so far after each batch, to save them."""
    model.eval()
    scores = {key: list(done[key]) if done else [] for key in SCORES}
    first = len(scores["recon_nats"])
    per_image = max(1, iwae_k)  # the bar counts posterior samples: with k in the thousands a batch takes minutes
    with tqdm(total=len(images) * per_image, initial=first * per_image, desc="evaluating", unit="sample",
              unit_scale=True, disable=not progress, leave=False) as bar:
        for start in range(first, len(images), batch_size):
            x = images[start:start + batch_size]
            out = model(x, generator=generator)
            scores["recon_nats"] += (-out.log_px).tolist()
            scores["kl_nats"] += out.kl.tolist()
            if iwae_k:
                bound = iwae_bound(model, x, iwae_k, generator, on_chunk=bar.update)
                scores["iwae_nll_nats"] += (-bound).tolist()
            else:
                bar.update(len(x))
            if on_batch is not None:
                on_batch(scores)
    return summarize(scores, math.prod(images.shape[1:]), model.likelihood.discrete, iwae_k)


def summarize(scores: dict[str, list[float]], dims: int, discrete: bool, iwae_k: int) -> dict:
    """Per-image scores -> the mean metrics `evaluate` reports."""
    n = len(scores["recon_nats"])
    recon, kl = math.fsum(scores["recon_nats"]) / n, math.fsum(scores["kl_nats"]) / n
    result = {"n_images": n, "neg_elbo_nats": recon + kl, "recon_nats": recon, "kl_nats": kl}
    if iwae_k:
        result["iwae_k"] = iwae_k
        result["iwae_nll_nats"] = math.fsum(scores["iwae_nll_nats"]) / n
    best = result.get("iwae_nll_nats", result["neg_elbo_nats"])
    result["bits_per_dim"] = bits_per_dim(best, dims, discrete)
    return result
