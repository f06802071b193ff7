"""Inpainting: fill the hidden pixels of images with a trained model, given the visible ones. The
known pixels are copied from the input, never touched. Two kinds of model serve it:
- a plain VAE, by posterior inference (`vaekit.tasks.posterior`): the observation is the visible
  pixels, scored by the model's own likelihood p(x_visible | z); a model trained with the
  occlusion mechanism (`--occlusion blocks`) has an encoder that already expects holes (zeros),
  which makes its proposals good from the first round;
- a conditional VAE trained with `--condition occlusion`, which models p(x | visible pixels)
  directly: its draws z ~ p(z) decode to plausible fills, and their mean is the fill.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from vaekit.errors import DataError
from vaekit.models.conditional import ConditionalVAE
from vaekit.models.conditions import shape_text
from vaekit.models.vae import ImageVAE
from vaekit.tasks.posterior import infer, require_single_latent
from vaekit.tasks.restore import check_input, conditional_for
from vaekit.tasks.tiles import run_batch


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
    model's uncertainty. A plain VAE: `proposals` importance samples per round, `rounds` refinements
    of the proposal. A conditional VAE: the mean of `proposals` draws is the fill."""
    masks = check_masks(masks, images)
    c = images.shape[1]
    if isinstance(model, ConditionalVAE):
        fill = conditional_fill(conditional_for(model, "inpaint"), c, samples, max(proposals, samples), generator)
    else:
        fill = posterior_fill(require_single_latent(model, "inpainting"), c, samples, proposals, rounds, generator)
    check_input(model, images, model.image_shape[1:], tiles)
    out = run_batch(fill, torch.cat([images, masks.to(images.dtype)], dim=1), model.image_shape[1:])
    out = torch.where(masks.bool().repeat(1, out.shape[1], 1, 1), out, images.repeat(1, 1 + samples, 1, 1))
    return Inpainting(out[:, :c], out[:, c:].unflatten(1, (samples, c)).transpose(0, 1))


def posterior_fill(vae, c: int, samples: int, proposals: int, rounds: int, generator):
    """(B, C + 1, H, W) images and masks -> posterior mean and samples, (B, C * (1 + samples), H, W)."""
    def fill(both: torch.Tensor) -> torch.Tensor:
        x, hole = both[:, :c], both[:, c:]
        visible = 1 - hole

        def complete(estimate):
            return torch.where(hole.bool(), estimate, x)

        posterior = infer(vae, x * visible, lambda params: vae.likelihood.log_prob(params, x, visible), complete,
                          proposals, rounds, generator)
        draws = list(posterior.resample(samples, generator)) if samples else []
        return torch.cat([posterior.mean(), *draws], dim=1)
    return fill


def conditional_fill(cvae: ConditionalVAE, c: int, samples: int, draws: int, generator):
    """The same for a `--condition occlusion` model: the images decoded at `draws` prior draws given
    the visible pixels; their mean (the model's E[x | visible]) and the first `samples` of them."""
    def fill(both: torch.Tensor) -> torch.Tensor:
        y = cvae.condition.observe(both[:, :c], both[:, c:])
        total, kept = 0, []
        for i in range(draws):
            image = cvae.restore(y, 1.0, generator)
            total = total + image
            if i < samples:
                kept.append(image)
        return torch.cat([total / draws, *kept], dim=1)
    return fill
