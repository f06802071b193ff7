"""Honest metrics: negative ELBO and IWAE NLL in nats, bits per dimension, PSNR."""
from __future__ import annotations

import math

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


@torch.no_grad()
def evaluate(model: ImageVAE, images: torch.Tensor, iwae_k: int = 0, batch_size: int = 500,
             generator: torch.Generator | None = None, progress: bool = True) -> dict:
    """Mean per-image metrics over `images` (float, (N, C, H, W), already prepared: binarized
    for Bernoulli models). ELBO with one posterior sample; IWAE NLL with k samples if k > 0."""
    model.eval()
    totals = {"recon": 0.0, "kl": 0.0, "iwae": 0.0}
    # counted in posterior samples (images x k): with k in the thousands one batch takes minutes
    with tqdm(total=len(images) * max(1, iwae_k), desc="evaluating", unit="sample", unit_scale=True,
              disable=not progress, leave=False) as bar:
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size]
            out = model(x, generator=generator)
            totals["recon"] += -out.log_px.sum().item()
            totals["kl"] += out.kl.sum().item()
            if iwae_k:
                bound = iwae_bound(model, x, iwae_k, generator, on_chunk=lambda n: bar.update(n * len(x)))
                totals["iwae"] += -bound.sum().item()
            else:
                bar.update(len(x))
    n = len(images)
    dims = math.prod(images.shape[1:])
    discrete = model.likelihood.discrete
    result = {
        "n_images": n,
        "neg_elbo_nats": (totals["recon"] + totals["kl"]) / n,
        "recon_nats": totals["recon"] / n,
        "kl_nats": totals["kl"] / n,
    }
    if iwae_k:
        result["iwae_k"] = iwae_k
        result["iwae_nll_nats"] = totals["iwae"] / n
    best = result.get("iwae_nll_nats", result["neg_elbo_nats"])
    result["bits_per_dim"] = bits_per_dim(best, dims, discrete)
    return result
