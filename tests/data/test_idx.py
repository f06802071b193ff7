"""IDX reader and reading MNIST-style files from a local folder (--data-dir)."""

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from vaekit.data import load_dataset
from vaekit.data.idx import read_idx
from vaekit.errors import DataError

SHARED_MNIST = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mnist"


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


@pytest.mark.parametrize("filename", ["a.idx.gz", "a.idx"])
def test_round_trip(tmp_path, filename):
    array = np.random.default_rng(0).integers(0, 256, size=(5, 3, 4), dtype=np.uint8)
    out = read_idx(write_idx(tmp_path / filename, array))
    assert out.dtype == np.uint8 and out.flags.writeable
    np.testing.assert_array_equal(out, array)


def test_truncated_payload(tmp_path):
    path = tmp_path / "cut.idx"
    path.write_bytes(idx_bytes(np.zeros((4, 2, 2)))[:-3])
    with pytest.raises(DataError, match="cut.idx is truncated"):
        read_idx(path)


def test_truncated_gzip(tmp_path):
    path = tmp_path / "cut.idx.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((4, 2, 2))))[:-10])
    with pytest.raises(DataError, match="cut.idx.gz is a truncated or corrupt gzip"):
        read_idx(path)


def test_bad_magic(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\x01\x02" + idx_bytes(np.zeros(3))[2:])
    with pytest.raises(DataError, match="bad.idx is not an IDX file"):
        read_idx(path)


def test_unsupported_type(tmp_path):
    path = tmp_path / "ints.idx"
    path.write_bytes(bytes([0, 0, 0x0C, 1]) + (2).to_bytes(4, "big") + bytes(8))
    with pytest.raises(DataError, match="ints.idx holds IDX type 0x0C"):
        read_idx(path)


def fake_mnist(folder: Path, n_images: int, n_labels: int, suffix: str = ".gz") -> None:
    rng = np.random.default_rng(1)
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n_images, 28, 28)))
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", rng.integers(0, 10, n_labels))


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_data_dir_gz_or_unpacked(tmp_path, suffix):
    fake_mnist(tmp_path, 6, 6, suffix)
    ds = load_dataset("mnist", "test", data_dir=str(tmp_path))
    assert ds.images.shape == (6, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert ds.labels.dtype == torch.int64 and ds.labels.shape == (6,)


def test_data_dir_count_mismatch(tmp_path):
    fake_mnist(tmp_path, 6, 5)
    with pytest.raises(DataError, match="6 images but .* 5 labels"):
        load_dataset("mnist", "test", data_dir=str(tmp_path))


def test_data_dir_missing_file(tmp_path):
    fake_mnist(tmp_path, 6, 6)
    with pytest.raises(DataError, match=f"{tmp_path} has no train-images-idx3-ubyte.gz"):
        load_dataset("mnist", "train", data_dir=str(tmp_path))


def test_shared_mnist_folder():
    if not SHARED_MNIST.is_dir():
        pytest.skip(f"shared MNIST files not found at {SHARED_MNIST}")
    train = load_dataset("mnist", "train", data_dir=str(SHARED_MNIST))
    test = load_dataset("mnist", "test", data_dir=str(SHARED_MNIST))
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.labels.min() == 0 and train.labels.max() == 9
    assert torch.bincount(test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
