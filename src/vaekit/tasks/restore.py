"""Restoration with a trained model: denoise, repair (JPEG), upscale (super-resolution); inpainting,
which also takes a `--condition occlusion` model, is in `vaekit.tasks.inpaint`.

Each task takes a batch of degraded images (B, C, h, w) in [0, 1] and returns clean ones. Two
kinds of model serve them:
- a conditional VAE (`--condition noise | jpeg | downscale`) trained for the task: it decodes
  p(x | z, y) at the prior mean z = 0 (deterministic, `temperature=0`) or at prior samples
  (`temperature > 0`, one plausible image each);
- for denoise and repair, also a plain VAE, best one trained with the noise mechanism
  (`--noise gaussian | jpeg`): the encoder maps the degraded image to its posterior, and the
  decoder's expected image is the restoration.
A model trained on crops of photos (`tiles=True`, the run's `model.tiled`) runs on overlapping
tiles, so any image size works; otherwise the images must have the size the model was trained at.
"""
from __future__ import annotations

from typing import Callable

import torch

from vaekit.data.transforms import resize
from vaekit.errors import ConfigError, DataError
from vaekit.models.conditional import ConditionalVAE
from vaekit.models.conditions import Jpeg, shape_text
from vaekit.models.vae import ImageVAE
from vaekit.tasks.posterior import infer, require_single_latent
from vaekit.tasks.tiles import run_batch

TASK_CONDITIONS = {"denoise": "noise", "repair": "jpeg", "upscale": "downscale", "inpaint": "occlusion"}


def channel_text(c: int) -> str:
    return "grey (1-channel)" if c == 1 else f"{c}-channel"


def check_input(model: ImageVAE, images: torch.Tensor, size: tuple[int, int], tiles: bool) -> None:
    """One clear error for images this model cannot restore (wrong channels, or size without tiles)."""
    c = model.image_shape[0]
    if images.dim() != 4:
        raise DataError(f"images must be a (B, C, H, W) batch, got a {images.dim()}-D tensor")
    if images.shape[1] != c:
        raise DataError(f"this model restores {channel_text(c)} images; the input has {images.shape[1]} channels")
    if not tiles and tuple(images.shape[2:]) != tuple(size):
        raise DataError(f"this model takes {shape_text(size)} images (the size it was trained at), got "
                        f"{shape_text(images.shape[2:])}; only a model trained on crops of photos (--tiled) "
                        "takes any size")


def conditional_for(model: ImageVAE, task: str) -> ConditionalVAE | None:
    """The model as a conditional VAE for `task`, None for a plain VAE, or a clear error."""
    if not isinstance(model, ConditionalVAE):
        return None
    if model.condition.kind != TASK_CONDITIONS[task]:
        raise ConfigError(f"this model was trained with --condition {model.condition.kind}, so it cannot {task}; "
                          f"{task} takes a model trained with --condition {TASK_CONDITIONS[task]}")
    return model


def apply(model: ImageVAE, fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
          size: tuple[int, int], tiles: bool, scale: int = 1, align: int = 1, ensemble: bool = False) -> torch.Tensor:
    """fn over a batch of model-sized inputs, or tile by tile over each image of any size; with
    `ensemble`, averaged over the image's flips and rotations (see self_ensemble)."""
    check_input(model, images, size, tiles)

    def run(x: torch.Tensor) -> torch.Tensor:
        return run_batch(fn, x, size, scale, align)
    if not ensemble:
        return run(images)
    return self_ensemble(run, images, quarter_turns=tiles or size[0] == size[1])


def self_ensemble(restore: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                  quarter_turns: bool = True) -> torch.Tensor:
    """The mean of `restore` over the 8 flips and quarter turns of the images, each output turned back
    (Lim et al. 2017's geometric self-ensemble): a model's errors differ between orientations while
    the truth does not, so the mean is closer to it, at 8x the cost. Without `quarter_turns` (a
    non-square model without tiles, which cannot take the turned image) it uses the 4 flips."""
    turns = (0, 1, 2, 3) if quarter_turns else (0, 2)
    total = torch.zeros(())
    for k in turns:
        for flip in (False, True):
            x = images.flip(-1) if flip else images
            y = restore(x.rot90(k, (-2, -1))).rot90(-k, (-2, -1))
            total = total + (y.flip(-1) if flip else y)
    return total / (2 * len(turns))


def check_ensemble(ensemble: bool, temperature: float) -> None:
    if ensemble and temperature > 0:
        raise ConfigError("the self-ensemble averages deterministic restorations; it cannot be combined with "
                          "sampling (--sample, temperature > 0)")


def estimate_sigma(noisy: torch.Tensor) -> torch.Tensor:
    """Gaussian noise level per image, (B,): the median absolute diagonal Haar detail / 0.6745
    (Donoho & Johnstone 1994); the image's own content barely reaches that sub-band."""
    x = noisy[..., : noisy.shape[-2] // 2 * 2, : noisy.shape[-1] // 2 * 2]
    detail = (x[..., ::2, ::2] - x[..., 1::2, ::2] - x[..., ::2, 1::2] + x[..., 1::2, 1::2]) / 2
    return detail.abs().flatten(1).median(dim=1).values / 0.6745


@torch.no_grad()
def denoise(model: ImageVAE, noisy: torch.Tensor, sigma: float | None = None, *, tiles: bool = False,
            temperature: float = 0.0, generator: torch.Generator | None = None, proposals: int = 128,
            ensemble: bool = False) -> torch.Tensor:
    """Denoised images, (B, C, H, W). A `--condition noise` model is told sigma (default: the sigma it
    was trained at, or, if it trained on a range, an estimate from each image). A plain VAE encodes
    the noisy image; with `sigma` it also weighs posterior samples by N(noisy; E[x|z], sigma^2).
    `ensemble`: the mean over the 8 flips and rotations (self_ensemble)."""
    if sigma is not None and not sigma > 0:
        raise ConfigError(f"sigma must be a positive noise level (pixels in [0, 1]), got {sigma}")
    check_ensemble(ensemble, temperature)
    cvae = conditional_for(model, "denoise")
    if cvae is not None:
        cond = cvae.condition

        def fn(tile):
            level = sigma if sigma is not None or not cond.random else estimate_sigma(tile)
            return cvae.restore(cond.observe(tile, sigma=level), temperature, generator)
    elif sigma is None:
        fn = model.reconstruct
    else:
        vae = require_single_latent(model, "denoising with --sigma")

        def fn(tile):
            def log_obs(params):
                mean = vae.likelihood.mean(params)
                return -0.5 * ((tile - mean) / sigma).pow(2).flatten(2).sum(-1)
            return infer(vae, tile, log_obs, lambda estimate: estimate, proposals, generator=generator).mean()
    return apply(model, fn, noisy, model.image_shape[1:], tiles, ensemble=ensemble)


@torch.no_grad()
def repair(model: ImageVAE, degraded: torch.Tensor, *, tiles: bool = False, temperature: float = 0.0,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Images restored from lossy compression (JPEG at low quality), (B, C, H, W). A `--condition jpeg`
    model decodes p(x | z, y); a plain VAE (best trained with `--noise jpeg`) reconstructs."""
    cvae = conditional_for(model, "repair")
    if cvae is None:
        return apply(model, model.reconstruct, degraded, model.image_shape[1:], tiles)
    align = 8 if isinstance(cvae.condition, Jpeg) else 1  # keep tiles on JPEG's 8x8 block grid
    return apply(model, lambda tile: cvae.restore(tile, temperature, generator), degraded, model.image_shape[1:],
                 tiles, align=align)


@torch.no_grad()
def upscale(model: ImageVAE, low_res: torch.Tensor, scale: int | None = None, *, tiles: bool = False,
            temperature: float = 0.0, generator: torch.Generator | None = None, ensemble: bool = False
            ) -> torch.Tensor:
    """Super-resolution by a `--condition downscale` model: (B, C, h, w) -> (B, C, h*scale, w*scale).
    `ensemble`: the mean over the 8 flips and rotations (self_ensemble)."""
    check_ensemble(ensemble, temperature)
    cvae = conditional_for(model, "upscale")
    if cvae is None:
        raise ConfigError("upscale needs a conditional VAE trained with --condition downscale; this run is a plain "
                          "VAE")
    if scale is not None and scale != cvae.condition.scale:
        raise ConfigError(f"this model upscales by {cvae.condition.scale}, not {scale}")
    return apply(model, lambda tile: cvae.restore(tile, temperature, generator), low_res,
                 cvae.condition.shape[1:], tiles, scale=cvae.condition.scale, ensemble=ensemble)


@torch.no_grad()
def restoration_examples(model: ConditionalVAE, x: torch.Tensor, generator: torch.Generator | None = None
                         ) -> torch.Tensor:
    """Rows of degraded (shown at full size), restored (z = 0) and clean images, (3B, C, H, W)."""
    y = model.condition.degrade(x, generator)
    shown = model.condition.full_res(y)[:, :model.condition.image_channels]
    return torch.cat([shown, model.restore(y), x])


def random_crops(images: list[torch.Tensor], size: int, count: int, generator: torch.Generator,
                 scales: tuple[float, ...] = (1.0,), orientations: bool = False) -> torch.Tensor:
    """`count` random size x size crops of images (C, H, W) of any sizes, about as many from each
    image and scale, as uint8 (count, C, size, size): training data for a `--tiled` restoration model.

    `scales` also crops from each image shrunk by those factors (antialiased bicubic): a shrunk
    photo packs more texture per pixel and has fewer JPEG blocks, as in DnCNN's multi-scale
    patches. `orientations` turns each crop into one of its 8 flips and quarter turns at random."""
    if not scales or any(not 0 < s <= 1 for s in scales):
        raise DataError(f"crop scales must lie in (0, 1], got {list(scales)}")
    versions = [shrink(image, s) for s in scales for image in images]
    small = [i for i, image in enumerate(versions) if min(image.shape[1:]) < size]
    if small:
        i = small[0]
        raise DataError(f"image {i % len(images)} is {shape_text(versions[i].shape[1:])} at scale "
                        f"{scales[i // len(images)]}, smaller than the {size}x{size} crops")
    which = torch.arange(count) % len(versions)
    crops = []
    for i in which.tolist():
        _, h, w = versions[i].shape
        top = int(torch.randint(0, h - size + 1, (1,), generator=generator))
        left = int(torch.randint(0, w - size + 1, (1,), generator=generator))
        crop = versions[i][:, top:top + size, left:left + size]
        if orientations:
            k = int(torch.randint(0, 8, (1,), generator=generator))
            crop = crop.rot90(k % 4, (-2, -1))
            crop = crop.flip(-1) if k >= 4 else crop
        crops.append(crop)
    return torch.stack(crops).to(torch.uint8)


def shrink(image: torch.Tensor, scale: float) -> torch.Tensor:
    """A uint8 (C, H, W) image shrunk by `scale` (antialiased bicubic; itself at 1)."""
    if scale == 1:
        return image
    return resize(image[None], *(max(1, round(n * scale)) for n in image.shape[1:]))[0]
