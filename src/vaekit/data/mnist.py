"""MNIST, Fashion-MNIST and KMNIST: same IDX layout, different mirrors and checksums.

Checksums are those torchvision lists. The MNIST training images also accept the md5 of
the copy in vaekit's shared data folder, which holds the same images re-ordered within
each class (so that they line up with the official labels file).
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vaekit.data.dataset import ImageDataset
from vaekit.data.download import cache_dir, fetch
from vaekit.data.idx import read_idx
from vaekit.errors import DataError

SPLIT_FILES = {  # split -> (images, labels), without the .gz
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class IdxSource:
    mirrors: tuple[str, ...]  # base URLs, tried in order
    md5s: dict[str, set[str]]  # file name -> accepted md5s


IDX_SOURCES = {
    "mnist": IdxSource(
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        md5s={
            "train-images-idx3-ubyte.gz": {
                "f68b3c2dcbeaaa9fbdd348bbdeb94873",  # official
                "cca5a2480530c91fbcc4f0ac2eb7efb5",  # shared copy, re-ordered within classes
            },
            "train-labels-idx1-ubyte.gz": {"d53e105ee54ea40749a09fcbcd1e9432"},
            "t10k-images-idx3-ubyte.gz": {"9fb629c4189551a2d022fa330f9573f3"},
            "t10k-labels-idx1-ubyte.gz": {"ec29112dd5afa0611ce80d1b7f02629c"},
        },
    ),
    "fashion-mnist": IdxSource(
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        md5s={
            "train-images-idx3-ubyte.gz": {"8d4fb7e6c68d591d4c3dfef9ec88bf0d"},
            "train-labels-idx1-ubyte.gz": {"25c81989df183df01b3e8a0aad5dffbe"},
            "t10k-images-idx3-ubyte.gz": {"bef4ecab320f06d8554ea6380940ec79"},
            "t10k-labels-idx1-ubyte.gz": {"bb300cfdad3c16e7a12a480ee83cd310"},
        },
    ),
    "kmnist": IdxSource(
        mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        md5s={
            "train-images-idx3-ubyte.gz": {"bdb82020997e1d708af4cf47b453dcf7"},
            "train-labels-idx1-ubyte.gz": {"e144d726b3acfaa3e44228e80efcd344"},
            "t10k-images-idx3-ubyte.gz": {"5c965bf0a639b31b8f53240b1b52f4d7"},
            "t10k-labels-idx1-ubyte.gz": {"7320c461ea6c1c855c0b718fb2a4b134"},
        },
    ),
}


def mirror_env_var(name: str) -> str:
    """VAEKIT_MNIST_MIRROR, VAEKIT_FASHION_MNIST_MIRROR, VAEKIT_KMNIST_MIRROR."""
    return f"VAEKIT_{name.upper().replace('-', '_')}_MIRROR"


def load_idx_dataset(
    name: str,
    split: str,
    *,
    data_dir: str | Path | None = None,
    mirror: str | None = None,
    progress: bool = True,
) -> ImageDataset:
    """Read one split from data_dir if given (no checksums), else from the download cache."""
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        image_file, label_file = (_find_local(folder, stem) for stem in SPLIT_FILES[split])
    else:
        image_file, label_file = _fetch_split(name, split, mirror, progress)
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.ndim != 3:
        raise DataError(f"{image_file} holds an array of shape {images.shape}; expected (N, H, W) images.")
    if labels.ndim != 1:
        raise DataError(f"{label_file} holds an array of shape {labels.shape}; expected (N,) labels.")
    if len(images) != len(labels):
        raise DataError(
            f"{image_file} holds {len(images)} images but {label_file} holds {len(labels)} labels."
        )
    return ImageDataset(
        images=torch.from_numpy(images).unsqueeze(1),  # (N, 1, H, W)
        labels=torch.from_numpy(labels.astype(np.int64)),
        name=name,
    )


def _fetch_split(name: str, split: str, mirror: str | None, progress: bool) -> list[Path]:
    source = IDX_SOURCES[name]
    override = mirror or os.environ.get(mirror_env_var(name))
    mirrors = [override] if override else list(source.mirrors)
    dest = cache_dir() / name
    return [
        fetch(f"{stem}.gz", mirrors, source.md5s[f"{stem}.gz"], dest, progress=progress)
        for stem in SPLIT_FILES[split]
    ]


def _find_local(folder: Path, stem: str) -> Path:
    if not folder.is_dir():
        raise DataError(f"the data folder {folder} does not exist.")
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    raise DataError(f"{folder} has no {stem}.gz (or unpacked {stem}).")
