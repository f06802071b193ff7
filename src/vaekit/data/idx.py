"""Reader for the IDX format of MNIST and its look-alikes (gzip or raw).

Format: two zero bytes, a type code, the number of dimensions, one big-endian uint32 per
dimension, then the payload in C order. Only unsigned bytes (type 0x08) are used by the
datasets vaekit loads, so other types are refused rather than half-supported.
"""

import gzip
import zlib
from pathlib import Path

import numpy as np

from vaekit.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
UBYTE = 0x08


def read_idx(path: str | Path) -> np.ndarray:
    """Return the array stored in an IDX file, checking the header against the payload."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{path} is not an IDX file (its first bytes are not an IDX magic number).")
    dtype_code, ndim = data[2], data[3]
    if dtype_code != UBYTE:
        raise DataError(
            f"{path} holds IDX type 0x{dtype_code:02X}; only unsigned bytes (0x08) are supported."
        )
    header_len = 4 + 4 * ndim
    if ndim == 0 or len(data) < header_len:
        raise DataError(f"{path} has a truncated or invalid IDX header.")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header_len + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        raise DataError(
            f"{path} is truncated or corrupt: its header promises {expected} bytes "
            f"for shape {dims} but the file holds {len(data)}."
        )
    # copy: frombuffer views immutable bytes, and torch wants a writable array
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims).copy()


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}.") from None
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path} is a truncated or corrupt gzip file ({err}).") from None
