"""Inpainting: fill the hidden pixels of images with a trained VAE, by posterior inference given the
visible ones (`vaekit.tasks.posterior`). The known pixels are copied from the input, never touched.

The observation is the visible pixels, scored by the model's own likelihood p(x_visible | z);
a model trained with the occlusion mechanism (`--occlusion blocks`) has an encoder that already
expects holes (zeros), which makes its proposals good from the first round.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from vaekit.errors import DataError
from vaekit.models.conditions import shape_text
from vaekit.models.vae import ImageVAE
from vaekit.tasks.posterior import infer, require_single_latent
from vaekit.tasks.restore import check_input
from vaekit.tasks.tiles import run_tiled


@dataclass
class Inpainting:
    mean: torch.Tensor  # E[x | visible pixels] in the holes, the input elsewhere, (B, C, H, W)
    samples: torch.Tensor  # posterior draws, completed the same way, (N, B, C, H, W)


def box_mask(height: int, width: int, box: tuple[int, int, int, int]) -> torch.Tensor:
    """The hole (x, y, w, h) in pixels, top-left origin, as a (1, H, W) mask with 1 inside."""
    x, y, w, h = box
    if w < 1 or h < 1 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise DataError(f"the box x={x}, y={y}, w={w}, h={h} does not lie inside the {width}x{height} image")
    mask = torch.zeros(1, height, width)
    mask[:, y:y + h, x:x + w] = 1
    return mask


def check_masks(masks: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Masks (B or 1, 1, H, W) with 1 = hidden, as a batch matching the images."""
    if masks.dim() != 4 or masks.shape[1] != 1 or masks.shape[2:] != images.shape[2:] \
            or masks.shape[0] not in (1, len(images)):
        raise DataError(f"the mask is {shape_text(masks.shape[-2:])} but the image is {shape_text(images.shape[2:])}; "
                        "a mask must have the image's size")
    if not ((masks == 0) | (masks == 1)).all():
        raise DataError("a mask must hold only 0 (known pixel) and 1 (pixel to fill)")
    return masks.expand(len(images), -1, -1, -1)


@torch.no_grad()
def inpaint(model: ImageVAE, images: torch.Tensor, masks: torch.Tensor, samples: int = 0, *, proposals: int = 128,
            rounds: int = 3, tiles: bool = False, generator: torch.Generator | None = None) -> Inpainting:
    """Fill images (B, C, H, W) where masks (B, 1, H, W) are 1. `samples` posterior draws show the
    model's uncertainty; `proposals` importance samples per round, `rounds` refinements of the proposal."""
    vae = require_single_latent(model, "inpainting")
    masks = check_masks(masks, images)
    check_input(vae, images, vae.image_shape[1:], tiles)
    c = images.shape[1]

    def fill(both: torch.Tensor) -> torch.Tensor:  # (B, C + 1, H, W) -> mean and samples, (B, C * (1 + N), H, W)
        x, hole = both[:, :c], both[:, c:]
        visible = 1 - hole

        def complete(estimate):
            return torch.where(hole.bool(), estimate, x)

        posterior = infer(vae, x * visible, lambda params: vae.likelihood.log_prob(params, x, visible), complete,
                          proposals, rounds, generator)
        draws = list(posterior.resample(samples, generator)) if samples else []
        return torch.cat([posterior.mean(), *draws], dim=1)

    both = torch.cat([images, masks.to(images.dtype)], dim=1)
    if tuple(images.shape[2:]) == tuple(vae.image_shape[1:]):
        out = fill(both)
    else:
        out = torch.stack([run_tiled(fill, image, vae.image_shape[1:]) for image in both])
    out = torch.where(masks.bool().repeat(1, out.shape[1], 1, 1), out, images.repeat(1, 1 + samples, 1, 1))
    return Inpainting(out[:, :c], out[:, c:].unflatten(1, (samples, c)).transpose(0, 1))
