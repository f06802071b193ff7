"""The .vkz file: a fixed header, JSON metadata, the codec's payload and a checksum.

    offset    size  field
    0         8     magic: 89 56 4B 5A 0D 0A 1A 0A ("\\x89VKZ\\r\\n\\x1a\\n", PNG-style)
    8         2     format version, uint16 little-endian (FORMAT_VERSION)
    10        2     codec id, uint16 LE (CODECS: 1 bits-back ANS, lossless; 2 learned transform, lossy)
    12        32    model fingerprint: sha256 of the model's config and weights (`model_fingerprint`)
    44        4     metadata length M, uint32 LE
    48        M     metadata: UTF-8 JSON (counts, shapes, names, codec settings, pixel checksum)
    48+M      8     payload length P, uint64 LE
    56+M      P     payload (the codec's entropy-coded stream)
    56+M+P    32    sha256 of every byte before it

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
FORMAT_VERSION = 1
CODECS = {1: "bits-back", 2: "transform"}
_HEAD = struct.Struct("<8sHH32sI")  # magic, version, codec id, fingerprint, metadata length
_PAYLOAD_LEN = struct.Struct("<Q")
_DIGEST = 32


class CompressedFileError(VaekitError):
    """A .vkz file that is not one, is damaged, has an unknown version, or needs another model."""


@dataclass
class Container:
    codec: str  # a value of CODECS
    fingerprint: bytes  # 32 bytes
    meta: dict
    payload: bytes


def pack(container: Container) -> bytes:
    codec_id = next(k for k, v in CODECS.items() if v == container.codec)
    meta = json.dumps(container.meta, separators=(",", ":")).encode()
    body = (_HEAD.pack(MAGIC, FORMAT_VERSION, codec_id, container.fingerprint, len(meta)) + meta
            + _PAYLOAD_LEN.pack(len(container.payload)) + container.payload)
    return body + hashlib.sha256(body).digest()


def unpack(data: bytes, source: str = "the file") -> Container:
    """Parse and verify a .vkz file's bytes; any damage is one CompressedFileError."""
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise CompressedFileError(f"{source} is not a vaekit compressed file (no .vkz magic at its start)")
    if len(data) < _HEAD.size + _PAYLOAD_LEN.size + _DIGEST:
        raise CompressedFileError(f"{source} is truncated ({len(data)} bytes, shorter than any .vkz file)")
    _, version, codec_id, fingerprint, meta_len = _HEAD.unpack_from(data)
    if version != FORMAT_VERSION:
        raise CompressedFileError(f"{source} has format version {version}; this vaekit reads version "
                                  f"{FORMAT_VERSION} only")
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise CompressedFileError(f"{source} is truncated or corrupted (its checksum does not match)")
    payload_at = _HEAD.size + meta_len
    if payload_at + _PAYLOAD_LEN.size > len(body):
        raise CompressedFileError(f"{source} is corrupted (its metadata length runs past its end)")
    (payload_len,) = _PAYLOAD_LEN.unpack_from(body, payload_at)
    if payload_at + _PAYLOAD_LEN.size + payload_len != len(body) or codec_id not in CODECS:
        raise CompressedFileError(f"{source} is corrupted (inconsistent lengths or an unknown codec id)")
    try:
        meta = json.loads(body[_HEAD.size:payload_at].decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CompressedFileError(f"{source} is corrupted (unreadable metadata)") from None
    return Container(CODECS[codec_id], fingerprint, meta, body[payload_at + _PAYLOAD_LEN.size:])


def check_model(container: Container, fingerprint: bytes, source: str = "the file") -> None:
    if container.fingerprint != fingerprint:
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
