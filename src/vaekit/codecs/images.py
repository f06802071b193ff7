"""Exact pixels in and out of a codec: no resizing or colour conversion that would lose information.

Inputs are image files, folders of them (not recursive) or a registered dataset split. A grey
model takes 8-bit grey images (PNG mode L or 1), a colour model RGB ones; anything else is a
clear DataError instead of a silent conversion.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vaekit.data import DATASETS, load_dataset
from vaekit.data.files import IMAGE_SUFFIXES
from vaekit.engine.batches import binarize_once
from vaekit.engine.files import staged_folder
from vaekit.errors import DataError
from vaekit.imaging import save_image

MODES = {1: ("L", "1"), 3: ("RGB",)}


def read_exact(path: Path, channels: int, convert: bool = False) -> torch.Tensor:
    """One image file as uint8 (C, H, W), pixel for pixel (`convert`: any mode, converted to the
    model's grey or RGB, for a lossy codec)."""
    try:
        with Image.open(path) as im:
            if convert and im.mode not in MODES[channels]:
                im = im.convert("L" if channels == 1 else "RGB")
            if im.mode not in MODES[channels]:
                want = "8-bit grey (L)" if channels == 1 else "RGB"
                raise DataError(f"image {path} is {im.mode}; this model codes {want} images exactly, so convert "
                                "it first")
            array = np.asarray(im.convert("L") if im.mode == "1" else im, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"cannot read image {path}: {e}") from None
    x = torch.from_numpy(array.copy())
    return x[None] if channels == 1 else x.permute(2, 0, 1)


def collect(inputs: list[str], channels: int, split: str = "test", data_dir: str | None = None,
            binarize: bool = False, limit: int | None = None) -> tuple[torch.Tensor, list[str]]:
    """uint8 images (N, C, H, W) and a unique PNG file name for each, from files, folders or a
    dataset name. `binarize`: datasets are binarized once with the evaluation seed (Bernoulli models)."""
    images, names = gather(inputs, channels, split, data_dir, binarize, limit)
    shapes = {tuple(x.shape[1:]) for x in images}
    if len(shapes) > 1:
        sizes = ", ".join("x".join(map(str, s)) for s in sorted(shapes))
        raise DataError(f"the inputs have different sizes ({sizes}); one file holds images of one size")
    return torch.cat(images), names


def collect_any_size(inputs: list[str], channels: int, split: str = "test", data_dir: str | None = None,
                     limit: int | None = None) -> tuple[list[torch.Tensor], list[str]]:
    """Like `collect`, for a lossy codec: a list of uint8 (C, H, W) images of any sizes, each
    converted to the model's channels (grey to RGB, RGBA to RGB, ...)."""
    images, names = gather(inputs, channels, split, data_dir, False, limit, convert=True)
    return [image for batch in images for image in batch], names


def gather(inputs: list[str], channels: int, split: str, data_dir: str | None, binarize: bool,
           limit: int | None, convert: bool = False) -> tuple[list[torch.Tensor], list[str]]:
    """Batches of uint8 images (n, C, H, W), one per file or dataset, and a unique name per image."""
    images, names = [], []
    for item in inputs:
        path = Path(item)
        if item in DATASETS and not path.exists():
            data = load_dataset(item, split, data_dir=data_dir, channels=channels).images[:limit]
            images.append((binarize_once(data) * 255).to(torch.uint8) if binarize else data)
            names += [f"{item}-{split}-{i:05d}.png" for i in range(len(data))]
            continue
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES) \
            if path.is_dir() else [path]
        if not files:
            raise DataError(f"folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        for f in files:
            if not f.is_file():
                raise DataError(f"no image file or dataset named {item}; datasets: {', '.join(DATASETS)}")
            images.append(read_exact(f, channels, convert)[None])
            names.append(f"{f.stem}.png")
    dupes = sorted(n for n, k in Counter(names).items() if k > 1)
    if dupes:
        raise DataError(f"two inputs would decompress to the same name {dupes[0]}; rename one")
    return images, names


def write_pngs(folder: str | Path, images: torch.Tensor | list[torch.Tensor], names: list[str]) -> Path:
    """Each decoded image (C, H, W) as a PNG; they appear in `folder` together once all are written."""
    with staged_folder(folder) as staged:
        for image, name in zip(images, names):
            save_image(staged / name, image.permute(1, 2, 0).numpy())
    return Path(folder)
