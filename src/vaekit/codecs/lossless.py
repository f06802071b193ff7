"""Images <-> a lossless .vkz container, with a trained VAE run (bits-back ANS).

    container = compress(run, images, names)     # uint8 (N, C, H, W) -> Container
    images, names = decompress(run, container)  # exactly the same pixels, or a CompressedFileError

Decoding ends with two checks, so that wrong pixels never leave this module: the stack must
come back to its starting state (empty, or an older file's random words), and the pixels must
match the sha256 stored at encoding.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path, PurePath

import torch

from vaekit.codecs.ans import GRID_BITS, from_bytes, to_bytes
from vaekit.codecs.bitsback import LATENT_BITS, BitsBackCoder
from vaekit.codecs.container import CompressedFileError, Container, check_model
from vaekit.codecs.seeds import seed_coding
from vaekit.engine.checkpoint import Run, model_fingerprint
from vaekit.errors import DataError, VaekitError

MAX_LATENT_BITS = 16
MAX_INITIAL_WORDS = 2**24  # the seeded words a decoder will generate at most
MAX_IMAGES = 2**26  # images per file a decoder will believe in


def run_fingerprint(run: Run) -> bytes:
    return model_fingerprint(run.config.to_dict(), run.model)


def pixels_sha256(images: torch.Tensor) -> str:
    return hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()


def compress(run: Run, images: torch.Tensor, names: list[str], latent_bits: int = LATENT_BITS) -> Container:
    """Code uint8 images (N, C, H, W) of the run's image shape into one bits-back stream."""
    if images.dtype != torch.uint8:
        raise DataError(f"lossless coding takes uint8 pixels, got {images.dtype}")
    check_names(names, len(images))
    if not 1 <= latent_bits <= MAX_LATENT_BITS:
        raise VaekitError(f"latent_bits must lie in 1..{MAX_LATENT_BITS}, got {latent_bits}")
    coder = BitsBackCoder(run.model, latent_bits)
    words, chunks, n_seed = coder.encode(images)
    meta = {"likelihood": coder.pixels.name, "count": len(images), "shape": list(images.shape[1:]),
            "latents_per_image": coder.chain.count, "latent_bits": latent_bits, "grid_bits": GRID_BITS,
            "seed_codec": coder.seed.name, "seed_images": n_seed, "chunks": run_lengths(chunks),
            "names": pack_names(names), "pixels_sha256": pixels_sha256(images), "run": str(Path(run.path).resolve())}
    return Container("bits-back", run_fingerprint(run), meta, to_bytes(words))


def decompress(run: Run, container: Container, source: str = "the file") -> tuple[torch.Tensor, list[str]]:
    """The images and names a lossless container holds, verified against its pixel checksum."""
    if container.codec != "bits-back":
        raise CompressedFileError(f"{source} holds {container.codec} (lossy) data; this is the lossless decoder")
    check_model(container, run_fingerprint(run), source)
    meta = _checked_meta(container, run, source)
    coder = BitsBackCoder(run.model, meta["latent_bits"])
    try:
        images = coder.decode(from_bytes(container.payload), meta["chunks"], meta["seed_images"],
                              meta["initial_words"])
    except VaekitError as e:
        raise CompressedFileError(f"{source}: {e}") from None
    if pixels_sha256(images) != meta["pixels_sha256"]:
        raise CompressedFileError(f"{source} decoded to pixels that fail its checksum: the probability tables "
                                  "differed from the encoder's (another torch or constriction build?); "
                                  "nothing was written")
    return images, meta["names"]


def _checked_meta(container: Container, run: Run, source: str) -> dict:
    """Metadata a decoder can trust its loops and paths to: a hand-made file with a valid checksum
    must not make it run forever or write outside the output folder."""
    meta = {"seed_images": 0, "initial_words": 0, **container.meta}  # files from before the seed codec
    try:
        count, runs = int(meta["count"]), [(int(n), int(times)) for n, times in meta["chunks"]]
        seeded = int(meta["seed_images"])
        ok = (0 <= count <= MAX_IMAGES and 0 <= seeded <= count and all(n >= 1 and times >= 1 for n, times in runs)
              and sum(n * times for n, times in runs) == count - seeded
              and (seeded == 0 or meta.get("seed_codec") == seed_coding(meta.get("likelihood")).name))
        if ok:
            meta["chunks"] = [n for n, times in runs for _ in range(times)]
            meta["names"] = unpack_names(meta["names"], count)
            meta["seed_images"] = seeded
            ok = (list(meta["shape"]) == list(run.model.image_shape) and meta["grid_bits"] == GRID_BITS
                  and 1 <= int(meta["latent_bits"]) <= MAX_LATENT_BITS
                  and 0 <= int(meta["initial_words"]) <= MAX_INITIAL_WORDS
                  and len(meta["names"]) == count and len(container.payload) % 4 == 0
                  and all(isinstance(n, str) and _plain_name(n) for n in meta["names"])
                  and len(set(meta["names"])) == count)
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise CompressedFileError(f"{source} is corrupted (its metadata does not describe this model's images)")
    return meta


def run_lengths(sizes: list[int]) -> list[list[int]]:
    """[1, 2, 32, 32, 32] -> [[1, 1], [2, 1], [32, 3]]: chunk sizes repeat, mostly the cap."""
    out: list[list[int]] = []
    for n in sizes:
        if out and out[-1][0] == n:
            out[-1][1] += 1
        else:
            out.append([n, 1])
    return out


def pack_names(names: list[str]) -> list[str] | dict:
    """Numbered names (prefix + zero-padded index + suffix, counting from 0) as their pattern:
    10,000 names spelled out would cost more than the binarized MNIST images themselves."""
    if names:
        m = re.fullmatch(r"(.*?)(\d+)(\D*)", names[0])
        if m and int(m[2]) == 0:
            prefix, width, suffix = m[1], len(m[2]), m[3]
            if names == [f"{prefix}{i:0{width}d}{suffix}" for i in range(len(names))]:
                return {"prefix": prefix, "width": width, "suffix": suffix}
    return list(names)


def unpack_names(packed, count: int) -> list:
    if isinstance(packed, dict):
        prefix, width, suffix = str(packed["prefix"]), int(packed["width"]), str(packed["suffix"])
        return [f"{prefix}{i:0{width}d}{suffix}" for i in range(count)]
    return list(packed)


def check_names(names: list[str], count: int) -> None:
    """One plain PNG name per image, each its own: decompress writes files by them."""
    if len(names) != count or len(set(names)) != len(names):
        raise DataError("every image needs its own file name")
    if not all(isinstance(n, str) and _plain_name(n) for n in names):
        raise DataError("file names must be plain PNG names (name.png, no folders): decompress writes them")


def _plain_name(name: str) -> bool:
    """A PNG file name with no folder in it: what `compress` stores, so decompress writes nothing else."""
    p = PurePath(name)
    return (p.name == name and "\\" not in name and "/" not in name and name.endswith(".png")
            and len(name) > len(".png"))
