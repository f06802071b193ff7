"""User data: a folder of images, or an array in a .npy / .npz file.

Folder images are decoded, converted and resized one at a time with Pillow, because their
sizes may differ; arrays arrive as one block and are only checked and reshaped here.
"""

import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from tqdm import tqdm

from vaekit.data.dataset import ImageDataset
from vaekit.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
WIDE_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}  # more than 8 bits per pixel
EXIF_ORIENTATION = 0x0112
TRANSPOSED = {5, 6, 7, 8}  # EXIF orientations that swap width and height
SPLIT_FOLDERS = {"train": ("train",), "test": ("test", "val")}
PROGRESS_MIN_FILES = 200
ARRAY_KEYS = ("images", "x")
LABEL_KEYS = ("labels", "y")
ACCEPTED_ARRAYS = "(N, H, W), (N, H, W, C) or (N, C, H, W) with C = 1 or 3, as uint8 or floats in [0, 1]"


def load_folder(
    root: Path, split: str, *, image_size: int | None, channels: int | None, progress: bool
) -> ImageDataset:
    """Every image under root (or under root/train, root/test|val when those exist)."""
    folder = _split_folder(root, split)
    paths = sorted(
        p for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    if not paths:
        raise DataError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    modes, sizes = zip(*(_peek(p) for p in paths))  # headers only: fail fast, decode later
    if image_size is None and len(set(sizes)) > 1:
        odd = next(i for i, size in enumerate(sizes) if size != sizes[0])
        raise DataError(
            f"images in {folder} have different sizes (e.g. {paths[0].relative_to(folder)} is "
            f"{sizes[0][0]}x{sizes[0][1]}, {paths[odd].relative_to(folder)} is "
            f"{sizes[odd][0]}x{sizes[odd][1]}); pass --image-size N to resize them."
        )
    if channels is None:
        channels = 1 if all(m in GREY_MODES for m in modes) else 3
    bar = tqdm(paths, desc=f"reading {folder.name}", unit="img",
               disable=not progress or len(paths) <= PROGRESS_MIN_FILES)
    arrays = [_read_image(p, channels, image_size) for p in bar]
    images = torch.from_numpy(np.stack(arrays))
    images = images.unsqueeze(1) if channels == 1 else images.permute(0, 3, 1, 2)
    return ImageDataset(images.contiguous(), None, str(root), paths=[str(p) for p in paths])


def _split_folder(root: Path, split: str) -> Path:
    """root/train or root/test (else root/val) when root is split that way, else root."""
    if not (root / "train").is_dir():
        return root
    for name in SPLIT_FOLDERS[split]:
        if (root / name).is_dir():
            return root / name
    return root


def _peek(path: Path) -> tuple[str, tuple[int, int]]:
    try:
        with Image.open(path) as im:
            w, h = im.size
            swap = im.getexif().get(EXIF_ORIENTATION) in TRANSPOSED
            return im.mode, ((h, w) if swap else (w, h))
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"cannot read the image {path}: {err}.") from None


def _read_image(path: Path, channels: int, image_size: int | None) -> np.ndarray:
    """(H, W) or (H, W, 3) uint8, converted and, if asked, resized and centre-cropped."""
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)  # phone photos are stored sideways
            if im.mode in WIDE_MODES:  # Pillow's own conversion would clip, not rescale
                im = _to_8bit(im)
            im = im.convert("L" if channels == 1 else "RGB")  # drops alpha
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise DataError(f"cannot read the image {path}: {err}.") from None
    if image_size is not None:
        im = ImageOps.fit(im, (image_size, image_size), method=Image.Resampling.LANCZOS)
    return np.asarray(im)


def _to_8bit(im: Image.Image) -> Image.Image:
    pixels = np.asarray(im, dtype=np.float64)
    top = 1.0 if im.mode == "F" else 65535.0
    return Image.fromarray(np.rint(np.clip(pixels / top, 0, 1) * 255).astype(np.uint8))


def load_array(path: Path) -> ImageDataset:
    """Images (and optional labels) from a .npy file or a .npz archive."""
    try:
        if path.suffix.lower() == ".npy":
            images, labels = np.load(path, allow_pickle=False), None
        else:
            images, labels = _read_npz(path)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"cannot read {path}: {err}.") from None
    images = _as_uint8(_as_nchw(images, path), path)
    return ImageDataset(torch.from_numpy(images), _as_labels(labels, len(images), path), str(path))


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    with np.load(path, allow_pickle=False) as archive:
        keys = archive.files
        image_key = next((k for k in ARRAY_KEYS if k in keys), keys[0] if len(keys) == 1 else None)
        if image_key is None:
            raise DataError(
                f"{path} holds the arrays {', '.join(keys) or '(none)'}; "
                f"store the images under 'images' or 'x'."
            )
        label_key = next((k for k in LABEL_KEYS if k in keys), None)
        return archive[image_key], archive[label_key] if label_key else None


def _as_nchw(a: np.ndarray, path: Path) -> np.ndarray:
    out = a
    if a.ndim == 3:
        out = a[:, None]
    elif a.ndim == 4 and a.shape[1] not in (1, 3) and a.shape[3] in (1, 3):
        out = a.transpose(0, 3, 1, 2)
    if out.ndim != 4 or out.shape[1] not in (1, 3):
        raise DataError(f"{path} holds an array of shape {a.shape}; accepted: {ACCEPTED_ARRAYS}.")
    if out.size == 0:
        raise DataError(f"{path} holds an empty array of shape {a.shape}.")
    return out


def _as_uint8(a: np.ndarray, path: Path) -> np.ndarray:
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if not np.issubdtype(a.dtype, np.floating):
        raise DataError(f"{path} holds {a.dtype} values; accepted: {ACCEPTED_ARRAYS}.")
    if not np.isfinite(a).all():
        raise DataError(f"{path} holds NaN or infinite values; accepted: {ACCEPTED_ARRAYS}.")
    low, high = float(a.min()), float(a.max())
    if low < 0 or high > 1:
        raise DataError(
            f"{path} holds floats from {low:g} to {high:g}; accepted: {ACCEPTED_ARRAYS}."
        )
    return np.ascontiguousarray(np.rint(a * 255).astype(np.uint8))


def _as_labels(labels: np.ndarray | None, n: int, path: Path) -> torch.Tensor | None:
    if labels is None:
        return None
    if labels.ndim not in (1, 2) or len(labels) != n or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{path} holds labels of shape {labels.shape} and type {labels.dtype}; "
            f"expected integers of shape ({n},) or ({n}, F)."
        )
    return torch.from_numpy(labels.astype(np.int64))
