"""Images from .npy / .npz files: accepted layouts and dtypes, and the refusals."""

import numpy as np
import pytest
import torch

from vaekit.data import load_dataset
from vaekit.errors import DataError

RNG = np.random.default_rng(0)
NCHW = RNG.integers(0, 256, (4, 3, 6, 5), dtype=np.uint8)


def load(tmp_path, array, name="a.npy", **kwargs):
    path = tmp_path / name
    np.save(path, array)
    return load_dataset(str(path), **kwargs)


@pytest.mark.parametrize(
    "layout, expected",
    [
        (NCHW, NCHW),
        (NCHW.transpose(0, 2, 3, 1), NCHW),  # NHWC
        (NCHW[:, :1], NCHW[:, :1]),
        (NCHW[:, :1].transpose(0, 2, 3, 1), NCHW[:, :1]),  # NHW1
        (NCHW[:, 0], NCHW[:, :1]),  # NHW
    ],
    ids=["NCHW", "NHWC", "N1HW", "NHW1", "NHW"],
)
def test_layouts(tmp_path, layout, expected):
    ds = load(tmp_path, layout)
    assert ds.images.dtype == torch.uint8 and ds.images.is_contiguous() and ds.labels is None
    assert torch.equal(ds.images, torch.from_numpy(expected))


def test_floats_in_unit_range(tmp_path):
    ds = load(tmp_path, np.array([[[0.0, 0.5, 1.0, 0.2]]], dtype=np.float32))
    assert ds.images.flatten().tolist() == [0, 128, 255, 51]


@pytest.mark.parametrize(
    "keys",
    [{"images": "images", "labels": "labels"}, {"images": "x", "labels": "y"}, {"images": "anything"}],
)
def test_npz_keys(tmp_path, keys):
    arrays = {keys["images"]: NCHW}
    if "labels" in keys:
        arrays[keys["labels"]] = np.arange(4, dtype=np.int32)
    np.savez(tmp_path / "a.npz", **arrays)
    ds = load_dataset(str(tmp_path / "a.npz"))
    assert torch.equal(ds.images, torch.from_numpy(NCHW))
    if "labels" in keys:
        assert ds.labels.dtype == torch.int64 and ds.labels.tolist() == [0, 1, 2, 3]


def test_npz_without_a_known_key(tmp_path):
    np.savez(tmp_path / "a.npz", first=NCHW, second=NCHW)
    with pytest.raises(DataError, match="a.npz holds the arrays first, second; store the images under 'images'"):
        load_dataset(str(tmp_path / "a.npz"))


def test_npz_labels_must_match(tmp_path):
    np.savez(tmp_path / "a.npz", images=NCHW, labels=np.arange(3))
    with pytest.raises(DataError, match=r"a.npz holds labels of shape \(3,\)"):
        load_dataset(str(tmp_path / "a.npz"))


def test_size_and_channels(tmp_path):
    ds = load(tmp_path, NCHW, image_size=4, channels=1)
    assert ds.images.shape == (4, 1, 4, 4) and ds.images.is_contiguous()


@pytest.mark.parametrize(
    "array, message",
    [
        (NCHW.astype(np.int32), "holds int32 values; accepted: "),
        (np.zeros((4, 6, 5, 2), np.uint8), r"holds an array of shape \(4, 6, 5, 2\); accepted: "),
        (np.zeros((6, 5), np.uint8), r"holds an array of shape \(6, 5\); accepted: "),
        (np.zeros((0, 6, 5), np.uint8), r"holds an empty array of shape \(0, 6, 5\)"),
        (np.full((2, 4, 4), 1.5), "holds floats from 1.5 to 1.5; accepted: "),
        (np.full((2, 4, 4), -0.1), "holds floats from -0.1 to -0.1; accepted: "),
        (np.array([[[np.nan, 0.5]]]), "holds NaN or infinite values; accepted: "),
    ],
    ids=["int32", "4-channels", "2-d", "empty", "above-1", "below-0", "nan"],
)
def test_refused_arrays(tmp_path, array, message):
    with pytest.raises(DataError, match=f"a.npy {message}"):
        load(tmp_path, array)


def test_unreadable_file(tmp_path):
    (tmp_path / "broken.npy").write_bytes(b"not numpy at all")
    with pytest.raises(DataError, match="cannot read .*broken.npy"):
        load_dataset(str(tmp_path / "broken.npy"))
