"""The download-free datasets (digits, sprites) and load_dataset's common options."""

import pytest
import torch

from vaekit.data import DATASETS, load_dataset
from vaekit.data.builtin import _split_indices, make_sprites
from vaekit.data.transforms import resize_square, to_channels
from vaekit.errors import DataError

SPRITE_SIZES = (3, 6, 8, 8, 8)


@pytest.fixture(scope="module")
def sprites():
    return make_sprites()


def rows(t: torch.Tensor) -> set[tuple]:
    return set(map(tuple, t.flatten(1).tolist()))


def test_registered_names():
    assert DATASETS == ("mnist", "fashion-mnist", "kmnist", "digits", "sprites")


def test_digits():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert (len(train), len(test)) == (1500, 297)
    assert train.shape == (1, 8, 8) and train.images.dtype == torch.uint8
    assert int(train.images.max()) == 255 and set(train.labels.tolist()) == set(range(10))
    assert torch.equal(load_dataset("digits", "test").images, test.images)


def test_split_is_a_partition():
    train, test = _split_indices(1797, 297, "train"), _split_indices(1797, 297, "test")
    assert sorted(torch.cat([train, test]).tolist()) == list(range(1797))
    assert torch.equal(_split_indices(1797, 297, "test"), test)


def test_sprites_splits():
    train, test = load_dataset("sprites", "train"), load_dataset("sprites", "test")
    assert (len(train), len(test)) == (8295, 921)
    assert train.shape == (1, 32, 32) and train.images.is_contiguous()
    assert train.factor_names == ("shape", "scale", "rotation", "x", "y")
    assert train.labels.shape == (8295, 5) and train.labels.dtype == torch.int64
    assert not rows(train.labels) & rows(test.labels)
    assert torch.equal(load_dataset("sprites", "test").images, test.images)


def test_sprites_cover_every_factor_combination(sprites):
    images, labels = sprites
    assert len(rows(labels)) == 9216
    assert labels.min(0).values.tolist() == [0] * 5
    assert (labels.max(0).values + 1).tolist() == list(SPRITE_SIZES)
    assert ((images == 0) | (images == 255)).all()
    frame = images[:, 0]
    assert (frame.flatten(1).amax(1) == 255).all()  # nothing vanishes
    border = torch.cat([frame[:, 0], frame[:, -1], frame[:, :, 0], frame[:, :, -1]], dim=1)
    assert int(border.max()) == 0  # nothing leaves the frame


def test_sprites_factors_move_the_shape(sprites):
    images, labels = sprites
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    mass = images[:, 0].float()
    cx = (mass * xs).sum((1, 2)) / mass.sum((1, 2))
    cy = (mass * ys).sum((1, 2)) / mass.sum((1, 2))
    at_x0, at_x7 = labels[:, 3] == 0, labels[:, 3] == 7
    at_y0, at_y7 = labels[:, 4] == 0, labels[:, 4] == 7
    assert cx[at_x7].mean() - cx[at_x0].mean() > 10 and cy[at_y7].mean() - cy[at_y0].mean() > 10
    area = mass.sum((1, 2))
    assert area[labels[:, 1] == 5].mean() > 2 * area[labels[:, 1] == 0].mean()


def test_size_and_channels_apply_to_every_source():
    ds = load_dataset("digits", "test", image_size=16, channels=3)
    assert ds.images.shape == (297, 3, 16, 16)
    assert ds.images.dtype == torch.uint8 and ds.images.is_contiguous()
    assert torch.equal(ds.images[:, 0], ds.images[:, 2])


def test_transforms():
    grey = torch.randint(0, 256, (2, 1, 6, 10), dtype=torch.uint8)
    assert torch.equal(to_channels(to_channels(grey, 3), 1), grey)
    wide = resize_square(grey, 4)
    assert wide.shape == (2, 1, 4, 4) and wide.dtype == torch.uint8
    flat = torch.full((1, 3, 12, 8), 77, dtype=torch.uint8)
    assert torch.equal(resize_square(flat, 4), torch.full((1, 3, 4, 4), 77, dtype=torch.uint8))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"split": "val"}, "unknown split 'val'; choose one of: train, test"),
        ({"channels": 2}, "channels must be 1 or 3"),
        ({"image_size": 0}, "image_size must be a positive integer"),
    ],
)
def test_bad_options(kwargs, message):
    with pytest.raises(DataError, match=message):
        load_dataset("digits", **kwargs)
