"""Image folders: channels, sizes, splits and the errors a user will meet."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, features

from vaekit.data import load_dataset
from vaekit.errors import DataError

RNG = np.random.default_rng(0)


def save(path: Path, array: np.ndarray, **options) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **options)
    return array


def grey(h=8, w=8):
    return RNG.integers(0, 256, (h, w), dtype=np.uint8)


def rgb(h=8, w=8):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_grey_folder_is_one_channel_recursive_and_sorted(tmp_path):
    b = save(tmp_path / "b.png", grey())
    a = save(tmp_path / "sub" / "a.png", grey())
    c = save(tmp_path / "a.png", grey())
    (tmp_path / ".hidden.png").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("ignored")
    ds = load_dataset(str(tmp_path), progress=False)
    assert ds.images.shape == (3, 1, 8, 8) and ds.labels is None
    assert [Path(p).relative_to(tmp_path).as_posix() for p in ds.paths] == ["a.png", "b.png", "sub/a.png"]
    assert torch.equal(ds.images[:, 0], torch.from_numpy(np.stack([c, b, a])))


def test_any_colour_image_makes_the_folder_rgb(tmp_path):
    g = save(tmp_path / "a.png", grey())
    c = save(tmp_path / "b.png", rgb())
    rgba = np.dstack([rgb(), np.full((8, 8), 9, np.uint8)])
    save(tmp_path / "c.png", rgba)
    ds = load_dataset(str(tmp_path), progress=False)
    assert ds.images.shape == (3, 3, 8, 8)
    assert torch.equal(ds.images[0], torch.from_numpy(g).expand(3, 8, 8))
    assert torch.equal(ds.images[1], torch.from_numpy(c).permute(2, 0, 1))
    assert torch.equal(ds.images[2], torch.from_numpy(rgba[..., :3]).permute(2, 0, 1))  # alpha dropped
    assert load_dataset(str(tmp_path), channels=1, progress=False).images.shape == (3, 1, 8, 8)


def test_sixteen_bit_grey_is_rescaled(tmp_path):
    save(tmp_path / "deep.png", np.array([[0, 257 * 128, 65535]], dtype=np.uint16))
    ds = load_dataset(str(tmp_path), progress=False)
    assert ds.images.flatten().tolist() == [0, 128, 255]


def test_other_formats(tmp_path):
    save(tmp_path / "a.jpg", rgb(), quality=95)
    save(tmp_path / "b.bmp", rgb())
    if features.check("webp"):
        save(tmp_path / "c.webp", rgb(), lossless=True)
    ds = load_dataset(str(tmp_path), progress=False)
    assert ds.shape == (3, 8, 8) and len(ds) == len(list(tmp_path.iterdir()))


def test_mixed_sizes_need_image_size(tmp_path):
    save(tmp_path / "a.png", grey(30, 40))
    save(tmp_path / "b.png", grey(28, 28))
    with pytest.raises(DataError, match=r"different sizes \(e.g. a.png is 40x30, b.png is 28x28\); "
                                        r"pass --image-size N"):
        load_dataset(str(tmp_path), progress=False)
    ds = load_dataset(str(tmp_path), image_size=16, progress=False)
    assert ds.images.shape == (2, 1, 16, 16) and ds.images.is_contiguous()


def test_resize_keeps_content_and_crops_the_centre(tmp_path):
    stripes = np.zeros((20, 80), np.uint8)
    stripes[:, 20:60] = 255  # white well past the centre square; squashing would show black
    save(tmp_path / "a.png", stripes)
    ds = load_dataset(str(tmp_path), image_size=10, progress=False)
    assert ds.images.shape == (1, 1, 10, 10) and int(ds.images.min()) >= 250


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_image_is_named(tmp_path, damage):
    save(tmp_path / "good.png", grey())
    bad = tmp_path / "bad.png"
    if damage == "garbage":
        bad.write_bytes(b"this is not a png")
    else:
        save(bad, rgb(64, 64))
        bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(DataError, match=f"cannot read the image {bad}"):
        load_dataset(str(tmp_path), progress=False)


def test_empty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match=f"{tmp_path} holds no images"):
        load_dataset(str(tmp_path), progress=False)


@pytest.mark.parametrize("test_folder", ["test", "val"])
def test_split_subfolders(tmp_path, test_folder):
    for i in range(3):
        save(tmp_path / "train" / f"{i}.png", grey())
    for i in range(2):
        save(tmp_path / test_folder / f"{i}.png", grey())
    assert len(load_dataset(str(tmp_path), "train", progress=False)) == 3
    test = load_dataset(str(tmp_path), "test", progress=False)
    assert len(test) == 2 and all(f"/{test_folder}/" in p for p in test.paths)


def test_unsplit_folder_serves_both_splits(tmp_path):
    save(tmp_path / "a.png", grey())
    assert len(load_dataset(str(tmp_path), "test", progress=False)) == 1


def test_unknown_name(tmp_path):
    with pytest.raises(DataError, match="no dataset or file named .*missing; known datasets: mnist,"):
        load_dataset(str(tmp_path / "missing"))
