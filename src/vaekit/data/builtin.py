"""Datasets that need no download: scikit-learn's digits and procedural dSprites-like shapes.

Both are deterministic and split by a permutation from a generator seeded 0, so "train"
and "test" are the same on every machine.
"""

import math

import numpy as np
import torch

from vaekit.data.dataset import ImageDataset

SPRITE_SIZE = 32
SPRITE_FACTORS = ("shape", "scale", "rotation", "x", "y")
SPRITE_SHAPES = ("square", "ellipse", "heart")
SPRITE_SCALES = np.linspace(0.5, 1.0, 6)
SPRITE_ROTATIONS = 8  # evenly over each shape's symmetry period, so no two images repeat
SPRITE_POSITIONS = np.linspace(9.0, 23.0, 8)  # centres, in pixels
SPRITE_RADIUS = 7.5  # pixels at scale 1; 9 - 7.5 keeps a one-pixel empty border
SYMMETRY = {"square": math.pi / 2, "ellipse": math.pi, "heart": 2 * math.pi}
DIGITS_TEST = 297
SPRITES_TEST_FRACTION = 0.1


def load_digits(split: str) -> ImageDataset:
    """The 1797 8x8 digits bundled with scikit-learn; 297 of them are the test split."""
    from sklearn.datasets import load_digits as sklearn_digits  # slow import, only when used

    bunch = sklearn_digits()
    images = torch.from_numpy(np.rint(bunch.images * (255 / 16)).astype(np.uint8)).unsqueeze(1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    keep = _split_indices(len(images), DIGITS_TEST, split)
    return ImageDataset(images[keep].contiguous(), labels[keep], "digits")


def load_sprites(split: str) -> ImageDataset:
    """Every combination of the five factors (3*6*8*8*8 = 9216 images); 10% are test."""
    images, labels = make_sprites()
    n_test = int(len(images) * SPRITES_TEST_FRACTION)
    keep = _split_indices(len(images), n_test, split)
    return ImageDataset(
        images[keep].contiguous(), labels[keep], "sprites", factor_names=SPRITE_FACTORS
    )


def make_sprites() -> tuple[torch.Tensor, torch.Tensor]:
    """Binary (N, 1, 32, 32) uint8 images and their (N, 5) factor indices, in factor order.

    Each shape is an implicit function evaluated on the pixel grid mapped into the shape's
    own frame (translate, rotate, scale), for all images of that shape at once.
    """
    n_pos = len(SPRITE_POSITIONS)
    others = np.meshgrid(
        np.arange(len(SPRITE_SCALES)), np.arange(SPRITE_ROTATIONS),
        np.arange(n_pos), np.arange(n_pos), indexing="ij",
    )
    scale_i, rot_i, x_i, y_i = (a.reshape(-1, 1, 1) for a in others)
    radius = (SPRITE_RADIUS * SPRITE_SCALES[scale_i]).astype(np.float32)
    grid = np.arange(SPRITE_SIZE, dtype=np.float32) + 0.5  # pixel centres
    dx = grid[None, None, :] - SPRITE_POSITIONS[x_i].astype(np.float32)  # (M, 1, W)
    dy = grid[None, :, None] - SPRITE_POSITIONS[y_i].astype(np.float32)  # (M, H, 1)
    blocks = []
    for shape, inside in zip(SPRITE_SHAPES, (_square, _ellipse, _heart)):
        angle = SYMMETRY[shape] * rot_i / SPRITE_ROTATIONS
        cos, sin = np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)
        u = (cos * dx + sin * dy) / radius  # (M, H, W), bounding radius 1
        v = (cos * dy - sin * dx) / radius  # points down the image
        blocks.append(inside(u, v))
    images = torch.from_numpy(np.concatenate(blocks).astype(np.uint8) * 255).unsqueeze(1)
    per_shape = np.stack([a.ravel() for a in (scale_i, rot_i, x_i, y_i)], axis=1)
    shape_i = np.repeat(np.arange(len(SPRITE_SHAPES)), len(per_shape))[:, None]
    labels = np.concatenate([shape_i, np.tile(per_shape, (len(SPRITE_SHAPES), 1))], axis=1)
    return images, torch.from_numpy(labels.astype(np.int64))


def _square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(u), np.abs(v)) <= 0.7  # corners at radius 0.99


def _ellipse(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (u / 0.95) ** 2 + (v / 0.5) ** 2 <= 1


def _heart(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    # (x^2 + y^2 - 1)^3 <= x^2 y^3 (y up); scaled and shifted to fit the unit disc
    x, y = 1.27 * u, 0.25 - 1.27 * v
    return (x * x + y * y - 1) ** 3 <= x * x * y**3


def _split_indices(n: int, n_test: int, split: str) -> torch.Tensor:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    return order[n - n_test :] if split == "test" else order[: n - n_test]
