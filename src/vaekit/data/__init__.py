"""Datasets as one uint8 tensor: registered names, image folders and .npy/.npz arrays.

    ds = load_dataset("mnist", "test")           # downloads once into cache_dir()
    ds = load_dataset("photos/", image_size=64)  # any folder of PNG/JPEG/BMP/WebP
    ds.images  # uint8 (N, C, H, W)
"""

from pathlib import Path

from vaekit.data.builtin import load_digits, load_sprites
from vaekit.data.dataset import ImageDataset
from vaekit.data.download import cache_dir
from vaekit.data.files import load_array, load_folder
from vaekit.data.mnist import IDX_SOURCES, load_idx_dataset
from vaekit.data.transforms import resize_square, to_channels
from vaekit.errors import DataError

__all__ = ["DATASETS", "ImageDataset", "cache_dir", "load_dataset"]

BUILTINS = {"digits": load_digits, "sprites": load_sprites}
DATASETS = (*IDX_SOURCES, *BUILTINS)
SPLITS = ("train", "test")
ARRAY_SUFFIXES = (".npy", ".npz")


def load_dataset(
    name: str,
    split: str = "train",
    *,
    data_dir: str | None = None,
    image_size: int | None = None,
    channels: int | None = None,
    mirror: str | None = None,
    progress: bool = True,
) -> ImageDataset:
    """Load a registered dataset, an image folder or an array file, as contiguous uint8.

    data_dir: read MNIST-style IDX files from this folder instead of downloading.
    image_size: side of the square output (shorter side resized, then centre-cropped).
    channels: 1 or 3; by default the source's own (folders: 1 only if all are grey).
    mirror: base URL to download from instead of the built-in mirrors.
    A registered name wins over a folder of the same name; write "./mnist" for the folder.
    """
    _check_options(split, image_size, channels)
    if name in IDX_SOURCES:
        dataset = load_idx_dataset(name, split, data_dir=data_dir, mirror=mirror, progress=progress)
    elif name in BUILTINS:
        dataset = BUILTINS[name](split)
    else:
        dataset = _load_path(Path(name).expanduser(), split, image_size, channels, progress)
    if channels is not None:
        dataset.images = to_channels(dataset.images, channels)
    if image_size is not None:
        dataset.images = resize_square(dataset.images, image_size)
    dataset.images = dataset.images.contiguous()
    return dataset


def _load_path(
    path: Path, split: str, image_size: int | None, channels: int | None, progress: bool
) -> ImageDataset:
    if path.is_dir():
        return load_folder(path, split, image_size=image_size, channels=channels, progress=progress)
    if path.is_file() and path.suffix.lower() in ARRAY_SUFFIXES:
        return load_array(path)
    if path.is_file():
        raise DataError(
            f"{path} is not a dataset file; expected a folder of images or a .npy/.npz array."
        )
    raise DataError(f"no dataset or file named {path}; known datasets: {', '.join(DATASETS)}.")


def _check_options(split: str, image_size: int | None, channels: int | None) -> None:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}.")
    if image_size is not None and (
        isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1
    ):
        raise DataError(f"image_size must be a positive integer, not {image_size!r}.")
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be 1 or 3, not {channels!r}.")
