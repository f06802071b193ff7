"""Degradations for the two training mechanisms, and for restoration benchmarks.

Noise mechanism: the encoder sees x + noise, the loss reconstructs the clean x (denoising VAE,
Im et al. 2017). Occlusion mechanism: the encoder sees x with regions hidden, and the loss weights
hidden and visible pixels separately: loss = -ELBO + lambda * R(x, c), i.e. per-pixel weights
1 + lambda * (w_hidden * c + w_visible * (1 - c)) on the reconstruction term, c the occlusion mask.
Images are (B, C, H, W) in [0, 1]; masks are (B, 1, H, W) with 1 where a pixel is hidden.
"""
from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image


def gaussian_noise(x, sigma: float, generator=None, random_sigma: bool = False):
    """x + N(0, sigma^2), clipped to [0, 1]; with `random_sigma` each image draws sigma from U(0, sigma)."""
    s = torch.full((len(x), 1, 1, 1), sigma)
    if random_sigma:
        s = s * torch.rand(s.shape, generator=generator)
    return (x + s * torch.randn(x.shape, generator=generator)).clamp(0, 1)


def salt_and_pepper(x, fraction: float, generator=None):
    """A `fraction` of pixels (per pixel position, all channels) set to 0 or 1 at random."""
    hit = torch.rand(len(x), 1, *x.shape[2:], generator=generator) < fraction
    salt = (torch.rand(hit.shape, generator=generator) < 0.5).to(x.dtype)
    return torch.where(hit, salt, x)


def jpeg(x, quality: int):
    """Each image through a real JPEG encode/decode at `quality` (Pillow)."""
    out = []
    for image in (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy():
        buffer = io.BytesIO()
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, "JPEG", quality=quality)
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())))
        out.append(decoded.reshape(image.shape))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255


def block_mask(shape, fraction: float, generator=None):
    """One axis-aligned square per image covering about `fraction` of it, at a random place."""
    b, _, h, w = shape
    side_h, side_w = max(1, round(h * fraction**0.5)), max(1, round(w * fraction**0.5))
    top = torch.randint(0, h - side_h + 1, (b, 1, 1), generator=generator)
    left = torch.randint(0, w - side_w + 1, (b, 1, 1), generator=generator)
    rows, cols = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    inside = (rows >= top) & (rows < top + side_h) & (cols >= left) & (cols < left + side_w)
    return inside.unsqueeze(1).float()


def centre_mask(shape, fraction: float, generator=None):
    """The same square in every image, centred: the "central region" of Context Encoders (Pathak et
    al. 2016), for a model meant to fill that one hole (a 14x14 hole in the middle of a digit)."""
    b, _, h, w = shape
    side_h, side_w = max(1, round(h * fraction**0.5)), max(1, round(w * fraction**0.5))
    mask = torch.zeros(b, 1, h, w)
    top, left = (h - side_h) // 2, (w - side_w) // 2
    mask[:, :, top:top + side_h, left:left + side_w] = 1
    return mask


def stroke_mask(shape, fraction: float, generator=None, strokes: int = 4):
    """Free-form strokes: thick random line segments, widened until they cover about `fraction`."""
    b, _, h, w = shape
    ends = torch.rand(b, strokes, 2, 2, generator=generator) * torch.tensor([h - 1, w - 1])
    p0, p1 = ends[:, :, 0, None, None, :], ends[:, :, 1, None, None, :]  # (B, S, 1, 1, 2)
    grid = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"), -1).float()  # (H, W, 2)
    d = p1 - p0
    t = (((grid - p0) * d).sum(-1) / (d * d).sum(-1).clamp(min=1e-6)).clamp(0, 1)
    dist = (grid - (p0 + t[..., None] * d)).norm(dim=-1).amin(1)  # (B, H, W): to the nearest stroke
    width = torch.quantile(dist.flatten(1), fraction, dim=1).view(b, 1, 1)
    return (dist <= width).unsqueeze(1).float()


def pixel_mask(shape, fraction: float, generator=None):
    b, _, h, w = shape
    return (torch.rand(b, 1, h, w, generator=generator) < fraction).float()


MASKS = {"blocks": block_mask, "centre": centre_mask, "strokes": stroke_mask, "pixels": pixel_mask}
NOISES = ("gaussian", "salt-pepper", "jpeg")


def degrade(x: torch.Tensor, mechanism, generator=None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(what the encoder sees, per-pixel loss weights or None) for a clean training batch."""
    m = mechanism
    weights = None
    if m.noise == "gaussian":
        x = gaussian_noise(x, m.noise_level, generator, m.noise_random)
    elif m.noise == "salt-pepper":
        x = salt_and_pepper(x, m.noise_level, generator)
    elif m.noise == "jpeg":
        x = jpeg(x, m.jpeg_quality)
    if m.occlusion != "none":
        mask = MASKS[m.occlusion](x.shape, m.occlusion_fraction, generator)
        x = x * (1 - mask)
        weights = 1 + m.occlusion_lambda * (m.occluded_weight * mask + m.visible_weight * (1 - mask))
    return x, weights
