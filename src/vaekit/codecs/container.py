"""The .vkz file: a fixed header, JSON metadata, the codec's payload and a checksum.

Format version 2 (written; version 1 files are still read):

    offset    size  field
    0         8     magic: 89 56 4B 5A 0D 0A 1A 0A ("\\x89VKZ\\r\\n\\x1a\\n", PNG-style)
    8         2     format version, uint16 little-endian (FORMAT_VERSION)
    10        2     codec id, uint16 LE (CODECS: 1 bits-back ANS, lossless; 2 learned transform, lossy)
    12        16    model fingerprint: the first 16 bytes of the sha256 of the model's config and weights
    28        4     metadata length M, uint32 LE
    32        M     metadata: UTF-8 JSON (counts, shapes, names, codec settings, decoded-data checksum)
    32+M      P     payload (the codec's entropy-coded stream), up to the checksum
    end-16    16    the first 16 bytes of the sha256 of every byte before it

Version 1 kept the whole 32-byte fingerprint and checksum and a uint64 payload length: 40 bytes
more, 1.2% of a 256 x 256 photo coded at 0.4 bpp. 128 bits still tell models apart and catch
damage beyond any chance of a collision.

A reader checks, in this order: magic, version, checksum, lengths, metadata, fingerprint, and
stops at the first failure with one `CompressedFileError`, before any decoding starts.
"""
from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path


from vaekit.engine.files import atomic_path
from vaekit.errors import VaekitError

MAGIC = b"\x89VKZ\r\n\x1a\n"
FORMAT_VERSION = 2
CODECS = {1: "bits-back", 2: "transform"}


@dataclass(frozen=True)
class _Layout:
    fingerprint: int  # bytes of the model's sha256 kept
    payload_length: bool  # a uint64 payload length follows the metadata
    digest: int  # bytes of the sha256 kept as the checksum

    @property
    def head(self) -> struct.Struct:  # magic, version, codec id, fingerprint, metadata length
        return struct.Struct(f"<8sHH{self.fingerprint}sI")


_LAYOUTS = {1: _Layout(32, True, 32), 2: _Layout(16, False, 16)}
_PAYLOAD_LEN = struct.Struct("<Q")
_VERSION = struct.Struct("<8sH")


def checksum(body: bytes, version: int = FORMAT_VERSION) -> bytes:
    """The checksum a file of this version ends with."""
    return hashlib.sha256(body).digest()[:_LAYOUTS[version].digest]


class CompressedFileError(VaekitError):
    """A .vkz file that is not one, is damaged, has an unknown version, or needs another model."""


@dataclass
class Container:
    codec: str  # a value of CODECS
    fingerprint: bytes  # the model's sha256 (32 bytes), or as much of it as the file keeps
    meta: dict
    payload: bytes


def pack(container: Container) -> bytes:
    layout = _LAYOUTS[FORMAT_VERSION]
    codec_id = next(k for k, v in CODECS.items() if v == container.codec)
    meta = json.dumps(container.meta, separators=(",", ":")).encode()
    fingerprint = container.fingerprint[:layout.fingerprint]
    body = layout.head.pack(MAGIC, FORMAT_VERSION, codec_id, fingerprint, len(meta)) + meta + container.payload
    return body + checksum(body)


def unpack(data: bytes, source: str = "the file") -> Container:
    """Parse and verify a .vkz file's bytes; any damage is one CompressedFileError."""
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise CompressedFileError(f"{source} is not a vaekit compressed file (no .vkz magic at its start)")
    if len(data) < _VERSION.size:
        raise CompressedFileError(f"{source} is truncated ({len(data)} bytes, shorter than any .vkz file)")
    version = _VERSION.unpack_from(data)[1]
    if version not in _LAYOUTS:
        raise CompressedFileError(f"{source} has format version {version}; this vaekit reads versions "
                                  f"{min(_LAYOUTS)}-{max(_LAYOUTS)}")
    layout = _LAYOUTS[version]
    extra = _PAYLOAD_LEN.size if layout.payload_length else 0
    if len(data) < layout.head.size + extra + layout.digest:
        raise CompressedFileError(f"{source} is truncated ({len(data)} bytes, shorter than any .vkz file)")
    _, _, codec_id, fingerprint, meta_len = layout.head.unpack_from(data)
    body, digest = data[:-layout.digest], data[-layout.digest:]
    if checksum(body, version) != digest:
        raise CompressedFileError(f"{source} is truncated or corrupted (its checksum does not match)")
    payload_at = layout.head.size + meta_len + extra
    if payload_at > len(body):
        raise CompressedFileError(f"{source} is corrupted (its metadata length runs past its end)")
    consistent = not extra or _PAYLOAD_LEN.unpack_from(body, payload_at - extra)[0] == len(body) - payload_at
    if not consistent or codec_id not in CODECS:
        raise CompressedFileError(f"{source} is corrupted (inconsistent lengths or an unknown codec id)")
    try:
        meta = json.loads(body[layout.head.size:layout.head.size + meta_len].decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CompressedFileError(f"{source} is corrupted (unreadable metadata)") from None
    if not isinstance(meta, dict):
        raise CompressedFileError(f"{source} is corrupted (its metadata is not a JSON object)")
    return Container(CODECS[codec_id], fingerprint, meta, body[payload_at:])


def check_model(container: Container, fingerprint: bytes, source: str = "the file") -> None:
    if container.fingerprint != fingerprint[:len(container.fingerprint)]:  # files keep 16 (version 1: 32) bytes
        raise CompressedFileError(f"{source} was compressed with another model (fingerprint "
                                  f"{container.fingerprint.hex()[:12]}, this one is {fingerprint.hex()[:12]}); "
                                  "decompress it with the run that compressed it")


def write(path: str | Path, container: Container) -> Path:
    """Write atomically: a reader never sees half a file."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(pack(container))
    return path


def read(path: str | Path) -> Container:
    path = Path(path)
    if not path.is_file():
        raise CompressedFileError(f"no compressed file at {path}")
    return unpack(path.read_bytes(), str(path))
