"""Checksum-verified downloads into the vaekit cache.

A file gets its final name only after its md5 matched (temp file + atomic rename), so a
crash, a truncated transfer or a mirror serving something else never leaves a file that
a later load would trust.
"""

import hashlib
import http.client
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Collection, Sequence
from pathlib import Path

from tqdm import tqdm

from vaekit.errors import DataError

TRIES_PER_MIRROR = 3
BACKOFF_S = 1.0  # the wait before retry k (k = 1, 2) is BACKOFF_S * 2**(k-1)
TIMEOUT_S = 30.0  # per socket operation, not for the whole file
CHUNK_BYTES = 1 << 20


class _WrongContent(Exception):
    """The mirror answered, but with other bytes: retrying it would not help."""


def cache_dir() -> Path:
    """Where downloads are kept: $VAEKIT_DATA if set, else ~/.cache/vaekit."""
    env = os.environ.get("VAEKIT_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vaekit"


def fetch(
    filename: str,
    mirrors: Sequence[str],
    md5s: Collection[str],
    dest_dir: str | Path,
    *,
    progress: bool = True,
) -> Path:
    """Return dest_dir/filename, downloading it unless a copy with a good md5 is there.

    Mirrors are base URLs tried in order; each gets a few tries for network errors, but a
    404 or a wrong md5 moves straight on to the next one.
    """
    dest_dir = Path(dest_dir)
    dest = dest_dir / filename
    try:
        if dest.is_file():
            if md5_of(dest) in md5s:
                return dest
            dest.unlink()  # stale or damaged: never let a later load trust it
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot use the cache folder {dest_dir}: {err.strerror or err}.") from None
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + filename
        reason = _try_mirror(url, dest, md5s, progress)
        if reason is None:
            return dest
        failures.append(f"{url} ({reason})")
    raise DataError(f"could not download {filename}: " + "; ".join(failures) + ".")


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _try_mirror(url: str, dest: Path, md5s: Collection[str], progress: bool) -> str | None:
    """Download url to dest; return None on success, else why it failed."""
    reason = "not tried"
    for attempt in range(TRIES_PER_MIRROR):
        if attempt:
            time.sleep(BACKOFF_S * 2 ** (attempt - 1))
        try:
            _download_verified(url, dest, md5s, progress)
            return None
        except _WrongContent as err:
            return str(err)
        except urllib.error.HTTPError as err:
            if err.code < 500:  # the file is not there; asking again will not change that
                return f"HTTP {err.code} {err.reason}"
            reason = f"HTTP {err.code} {err.reason}"
        except urllib.error.URLError as err:
            reason = str(err.reason)
        except (OSError, http.client.HTTPException) as err:
            reason = f"{type(err).__name__}: {err}"
    return f"{reason}, after {TRIES_PER_MIRROR} tries"


def _download_verified(url: str, dest: Path, md5s: Collection[str], progress: bool) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            size = response.headers.get("Content-Length")
            size = int(size) if size else None
            received = 0
            with tqdm(total=size, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
                    received += len(chunk)
        if size is not None and received != size:  # read(n) does not raise on a dropped connection
            raise ConnectionError(f"connection closed after {received} of {size} bytes")
        if digest.hexdigest() not in md5s:
            raise _WrongContent(
                f"a truncated or different file: md5 {digest.hexdigest()}, "
                f"expected {' or '.join(sorted(md5s))}"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
