"""Image grids and PNG files."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vaekit.engine.files import atomic_path


def make_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2, min_cell: int = 48) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> uint8 (H', W', C) grid with `nrow` images per row. Small images
    are enlarged by an integer factor (nearest) so that 8x8 or 28x28 pictures stay readable."""
    images = images.detach().float().clamp(0, 1).cpu()
    n, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    scale = max(1, math.ceil(min_cell / max(h, w)))
    if scale > 1:
        images = images.repeat_interleave(scale, 2).repeat_interleave(scale, 3)
        h, w = h * scale, w * scale
    rows = math.ceil(n / nrow)
    grid = torch.ones(c, rows * (h + padding) + padding, nrow * (w + padding) + padding)
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top:top + h, left:left + w] = images[i]
    return (grid.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def save_image(path: str | Path, array: np.ndarray) -> Path:
    """Write a uint8 (H, W, C) array atomically; the format follows the suffix."""
    from vaekit.errors import VaekitError

    path = Path(path)
    pil = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    image_format = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    try:
        with atomic_path(path) as tmp:
            pil.save(tmp, format=image_format)
    except OSError as e:
        if e.errno is not None:  # a full disk, a read-only folder
            raise VaekitError(f"cannot write {path}: {e.strerror}") from None
        raise VaekitError(f"cannot write {path} as {image_format}: {e}; use .png") from None  # e.g. grey as .xbm
    except (ValueError, KeyError) as e:  # a format Pillow cannot write this image in
        raise VaekitError(f"cannot write {path} as {image_format}: {e}; use .png") from None
    return path


def save_grid(path: str | Path, images: torch.Tensor, nrow: int | None = None) -> Path:
    return save_image(path, make_grid(images, nrow))


def load_image(path: str | Path, shape: tuple[int, int, int]) -> torch.Tensor:
    """Read an image file as a model input of `shape` (C, H, W) in [0, 1]: converted to the model's
    channel count and, if its size differs, resized (shorter side) and centre-cropped."""
    from vaekit.errors import DataError

    c, h, w = shape
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a folder; give image files")
    if not path.is_file():
        raise DataError(f"image {path} does not exist")
    try:
        with Image.open(path) as im:
            im = im.convert("L" if c == 1 else "RGB")
            if im.size != (w, h):
                s = max(w / im.width, h / im.height)
                im = im.resize((max(w, round(im.width * s)), max(h, round(im.height * s))), Image.Resampling.BICUBIC)
                left, top = (im.width - w) // 2, (im.height - h) // 2
                im = im.crop((left, top, left + w, top + h))
            array = np.asarray(im, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"cannot read image {path}: {e}") from None
    x = torch.from_numpy(array.copy()).float().div_(255)
    return x[None] if c == 1 else x.permute(2, 0, 1)
