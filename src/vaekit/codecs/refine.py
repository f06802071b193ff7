"""Encoder-side latent refinement: fit one image's latents to its own rate + lambda * distortion.

The analysis transform g_a predicts latents for every image at once; for any one image they are
not the best the decoder could be given (the "amortization gap"). Refinement starts from them and
takes gradient steps on that image's own objective, through the fixed synthesis and entropy model
(Campos, Meierhans, Djelouah & Schroers, "Content adaptive optimization for neural image
compression", CVPR-W 2019; Yang, Bamler & Mandt, "Improving inference for neural image
compression", NeurIPS 2020). Only the encoder changes: the file format and the decoder do not.

Rounding is relaxed as in stochastic Gumbel annealing (SGA, Yang et al.): each latent is a random
soft mix of its floor and ceiling, weighted by exp(-atanh(distance) / tau) plus Gumbel noise, so
the objective sees values near the integers the coder will use. (The relaxation the codec trains
with, uniform noise for the rates and straight-through rounding for the synthesis, made the exact
objective worse within 10 steps on a crop of a training photo; so did straight-through rounding
alone.)

Every CHECK_EVERY steps the exact objective (rounded latents, the entropy model's bits, 8-bit
pixels) is measured, and the encoder keeps the best latents seen, the initial ones included:
refinement never makes an image's objective, as the entropy model measures it, worse.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from vaekit.errors import DataError
from vaekit.models.transform import TransformCodec, around_mean, rounded

REFINE_LR = 0.05  # Adam's step on latents measured in quantization steps
TAU = 0.5  # SGA's temperature, held constant: annealed linearly to zero over 40 steps, it ended worse
CHECK_EVERY = 5  # steps between measurements of the exact objective (a forward pass each)
MAX_REFINE_PIXELS = 4096 * 4096  # refinement holds the whole image's activations, forward and backward


@torch.enable_grad()  # callers may be inside torch.no_grad()
def refine_latents(model: TransformCodec, x: torch.Tensor, size: tuple[int, int], q: int, steps: int,
                   lr: float = REFINE_LR, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """x (1, C, H, W) in [0, 1], padded to multiples of model.factor from the image's `size` (h, w);
    q the quality index (0-based). Returns y' (1, M, H/16, W/16) and z (hyperprior, else None), unrounded."""
    if x.shape[-2] * x.shape[-1] > MAX_REFINE_PIXELS:
        raise DataError(f"latent refinement works on whole images up to {MAX_REFINE_PIXELS} pixels; "
                        "compress bigger ones without --refine")
    quality = torch.tensor([q])
    lam = model.lambdas[q] * 255**2
    generator = torch.Generator().manual_seed(seed)
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:  # gradients for the latents only: about half the backward pass
        p.requires_grad_(False)
    try:
        with torch.no_grad():
            y0 = model.analysis(x, quality)
            z0 = model.h_a(y0) if model.kind == "hyperprior" else None
        y = y0.clone().requires_grad_(True)
        z = None if z0 is None else z0.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([v for v in (y, z) if v is not None], lr=lr)
        best = (float("inf"), y0, z0)
        for step in range(steps + 1):
            if step % CHECK_EVERY == 0 or step == steps:
                with torch.no_grad():
                    exact = _objective(model, x, size, y, z, quality, lam).item()
                if exact < best[0]:
                    best = (exact, y.detach().clone(), None if z is None else z.detach().clone())
            if step == steps:
                break
            loss = _objective(model, x, size, y, z, quality, lam, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return best[1], best[2]


def _objective(model: TransformCodec, x: torch.Tensor, size: tuple[int, int], y: torch.Tensor,
               z: torch.Tensor | None, quality: torch.Tensor, lam: float,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """bpp + lambda * 255^2 * MSE of one image (padding coded, not scored); relaxed (soft rounding)
    with a generator, exact (the coder's rounding, 8-bit pixels) without."""
    if generator is None:
        quantize = rounded
    else:
        def quantize(v, mean, _):
            soft = around_mean(lambda c: _soft_round(c, generator), v, mean)
            return soft, soft
    x_hat, likelihoods = model.decode_latents(y, z, quality, quantize)
    bits = sum(-torch.log2(p).sum() for p in likelihoods.values())
    h, w = size
    x_hat = x_hat[..., :h, :w]
    if generator is None:
        x_hat = (x_hat.clamp(0, 1) * 255).round() / 255
    return bits / (h * w) + lam * F.mse_loss(x_hat, x[..., :h, :w])


def _soft_round(v: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """SGA's relaxed rounding: floor(v) + the ceiling's weight in a Gumbel-softmax between floor and ceiling."""
    floor = torch.floor(v)
    frac = (v - floor).clamp(1e-6, 1 - 1e-6)
    gumbel = -torch.log(-torch.log(torch.rand((2, *v.shape), generator=generator).clamp_min(1e-10)))
    logits = torch.stack([-torch.atanh(frac), -torch.atanh(1 - frac)]) / TAU + gumbel
    return floor + torch.softmax(logits, dim=0)[1]
