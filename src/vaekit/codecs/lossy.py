"""Images <-> a lossy .vkz container with a trained transform codec (vaekit.models.transform).

    container = compress(run, images, names, quality)   # uint8 (C, H, W) each, any sizes
    container = compress(run, images, names, quality, refine_steps=20)  # latents fitted per image first
    images, names = decompress(run, container)           # the codec's reconstructions, uint8

Per image, on one ANS stack (constriction), the decoder pops in this order:

    hyperprior:  z^ (per channel, the factorized table)  ->  mean, scale = h_s(z^)
                 y symbols under N(0, scale) (QuantizedGaussian),  y^ = symbols + mean
    factorized:  y^ (per channel, the factorized table)
    x^ = g_s(y^ / gain[q]) cropped to the image size

Determinism: the decoder must rebuild every table the encoder used. The factorized tables depend
on the weights only; they are computed in float64 with one thread. The Gaussian scales are
mapped to the 64 fixed values of `SCALE_TABLE` (computed from h_s in float64, where another
thread count changes the last bits only, ~1e-16, far below the gaps between table values), and
the means are rounded to the grid of `on_grid`; constriction quantizes the exact table values
with the same integer code on both sides. The file stores a checksum of all decoded symbols, so
a decoder whose tables still differed reports an error instead of writing garbage. The constants
behind the tables (SCALE_TABLE, GRID_BITS, the supports) are not stored: changing one changes
the file format, and old files would fail that checksum.

Any size: images are padded (replicating the edge) to a multiple of 16 (factorized) or 64
(hyperprior) and cropped after decoding. Large images run the analysis and synthesis transforms
tile by tile in latent space with a margin wider than their receptive fields, so the tiled result
is the whole-image result (no seams) at a bounded memory cost.
"""
from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Callable

import constriction
import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from vaekit.codecs.ans import AnsCoder, from_bytes, on_grid, one_thread, to_bytes
from vaekit.codecs.container import CompressedFileError, Container, check_model
from vaekit.codecs.lossless import _plain_name, check_names, pack_names, unpack_names, run_lengths
from vaekit.codecs.refine import refine_latents
from vaekit.engine.checkpoint import Run, model_fingerprint
from vaekit.errors import DataError, VaekitError
from vaekit.metrics import psnr_db
from vaekit.models.entropy import SCALE_TABLE, scale_index
from vaekit.models.transform import FACTORIZED_SUPPORT, GAUSSIAN_SUPPORT, TransformCodec

_model = constriction.stream.model
TILE_LATENTS = 32  # transforms run on tiles of at most 32 x 32 latents (512 x 512 pixels) ...
TILE_MARGIN = 4  # ... plus 4 latents (64 pixels) of context per side; their receptive fields reach < 2
MAX_SIDE = 2**15  # image sides a decoder will believe in
MAX_IMAGES = 2**20  # images per file a decoder will believe in


def codec_of(run: Run) -> TransformCodec:
    if not isinstance(run.model, TransformCodec):
        raise VaekitError(f"the run {run.path} holds a {run.config.model.arch} model, not a lossy codec; train one "
                          "with --model hyperprior (or factorized), or compress losslessly with --lossless")
    return run.model


def quality_index(model: TransformCodec, quality: int | None) -> int:
    """Quality levels are numbered 1..Q on the command line (higher: more bits, better images)."""
    if quality is None:
        return model.qualities - 1
    if not 1 <= quality <= model.qualities:
        raise VaekitError(f"this codec has quality levels 1..{model.qualities}, got {quality}")
    return quality - 1


def tiled(fn: Callable[[torch.Tensor], torch.Tensor], v: torch.Tensor, ratio_in: int, ratio_out: int,
          tile: int = TILE_LATENTS, margin: int = TILE_MARGIN) -> torch.Tensor:
    """fn over v (1, C, h * ratio_in, w * ratio_in) -> (1, C', h * ratio_out, w * ratio_out), computed
    on tiles of tile x tile latent cells, each with `margin` cells of context (cropped away)."""
    h, w = v.shape[-2] // ratio_in, v.shape[-1] // ratio_in
    if h <= tile and w <= tile:
        return fn(v)
    out = None
    for i0 in range(0, h, tile):
        for j0 in range(0, w, tile):
            i1, j1 = min(h, i0 + tile), min(w, j0 + tile)
            a0, a1, b0, b1 = max(0, i0 - margin), min(h, i1 + margin), max(0, j0 - margin), min(w, j1 + margin)
            r = fn(v[..., a0 * ratio_in:a1 * ratio_in, b0 * ratio_in:b1 * ratio_in])
            if out is None:
                out = r.new_empty(1, r.shape[1], h * ratio_out, w * ratio_out)
            out[..., i0 * ratio_out:i1 * ratio_out, j0 * ratio_out:j1 * ratio_out] = \
                r[..., (i0 - a0) * ratio_out:(i1 - a0) * ratio_out, (j0 - b0) * ratio_out:(j1 - b0) * ratio_out]
    return out


class LossyCoder:
    """A trained transform codec wrapped for coding one uint8 image (C, H, W) at a time."""

    def __init__(self, model: TransformCodec, tile: int = TILE_LATENTS):
        self.model = model.eval()
        self.tile = tile
        self.model64 = copy.deepcopy(model).double().eval()  # the hyper path: tables from float64 values
        with torch.no_grad(), one_thread():
            self.table = self.model64.density.pmf_table(FACTORIZED_SUPPORT).numpy()  # (C, 2S + 1)
        self.stds = SCALE_TABLE.numpy()

    # --- the deterministic path shared by the encoder and the decoder ---
    def symbols(self, image: torch.Tensor, q: int, refine_steps: int = 0) -> dict[str, np.ndarray]:
        """Integer symbols of one image: {'y': (M, h, w)} or {'z': (N, h/4, w/4), 'y': ...};
        with refine_steps, from latents fitted to this image (vaekit.codecs.refine)."""
        m = self.model
        x = image.float()[None] / 255
        h, w = x.shape[-2:]
        x = F.pad(x, (0, -w % m.factor, 0, -h % m.factor), mode="replicate")
        quality = torch.tensor([q])
        if refine_steps:
            y, z = refine_latents(m, x, (h, w), q, refine_steps)
        else:
            with torch.no_grad():
                y = tiled(lambda t: m.analysis(t, quality), x, 16, 1, self.tile)
                z = m.h_a(y) if m.kind == "hyperprior" else None
        if m.kind == "factorized":
            return {"y": _clamped(y, FACTORIZED_SUPPORT)}
        z = _clamped(z, FACTORIZED_SUPPORT)
        mean, _ = self.hyper(z)
        return {"z": z, "y": _clamped(y.double() - mean, GAUSSIAN_SUPPORT)}

    @torch.no_grad()
    def hyper(self, z: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        """z symbols (N, h, w) -> the grid-rounded mean (1, M, 4h, 4w) float64 and each y's scale index."""
        mean, scale = self.model64.hyper_params(torch.from_numpy(z).double()[None])
        return torch.from_numpy(on_grid(mean.numpy())), scale_index(scale[0]).numpy()

    @torch.no_grad()
    def pixels(self, symbols: dict[str, np.ndarray], q: int, size: tuple[int, int]) -> torch.Tensor:
        """The decoded image, uint8 (C, H, W), from the symbols."""
        y_hat = torch.from_numpy(symbols["y"]).double()[None]
        if self.model.kind == "hyperprior":
            y_hat = y_hat + self.hyper(symbols["z"])[0]
        quality = torch.tensor([q])
        x_hat = tiled(lambda t: self.model.synthesis(t, quality), y_hat.float(), 1, 16, self.tile)
        h, w = size
        return (x_hat[0, :, :h, :w].clamp(0, 1) * 255).round().to(torch.uint8)

    def reconstruction(self, image: torch.Tensor, q: int) -> torch.Tensor:
        """What decoding gives for this image, without entropy coding (the model's own reconstruction)."""
        return self.pixels(self.symbols(image, q), q, tuple(image.shape[-2:]))

    # --- entropy coding ---
    def push(self, coder: AnsCoder, symbols: dict[str, np.ndarray]) -> None:
        """y first, then z on top: the decoder pops z, then the y its tables need."""
        if self.model.kind == "factorized":
            self._push_factorized(coder, symbols["y"])
            return
        _, idx = self.hyper(symbols["z"])
        coder.encode_reverse(symbols["y"].ravel().astype(np.int32), _gaussian(),
                             np.zeros(idx.size), self.stds[idx.ravel()])
        self._push_factorized(coder, symbols["z"])

    def pop(self, coder: AnsCoder, latent_shape: tuple[int, int]) -> dict[str, np.ndarray]:
        """Symbols of an image whose y has latent_shape (h, w)."""
        m, (h, w) = self.model, latent_shape
        if m.kind == "factorized":
            return {"y": self._pop_factorized(coder, (h, w))}
        z = self._pop_factorized(coder, (h // 4, w // 4))
        _, idx = self.hyper(z)
        y = coder.decode(_gaussian(), np.zeros(idx.size), self.stds[idx.ravel()])
        return {"z": z, "y": y.reshape(idx.shape).astype(np.int64)}

    def _push_factorized(self, coder: AnsCoder, symbols: np.ndarray) -> None:
        for c in reversed(range(len(symbols))):
            coder.encode_reverse((symbols[c].ravel() + FACTORIZED_SUPPORT).astype(np.int32),
                                 _model.Categorical(self.table[c], perfect=False))

    def _pop_factorized(self, coder: AnsCoder, shape: tuple[int, int]) -> np.ndarray:
        n = shape[0] * shape[1]
        rows = [coder.decode(_model.Categorical(self.table[c], perfect=False), n) for c in range(len(self.table))]
        return (np.stack(rows).astype(np.int64) - FACTORIZED_SUPPORT).reshape(len(self.table), *shape)


def _gaussian():
    return _model.QuantizedGaussian(-GAUSSIAN_SUPPORT, GAUSSIAN_SUPPORT)


def _clamped(v: torch.Tensor, support: int) -> np.ndarray:
    return torch.round(v[0]).clamp(-support, support).to(torch.int64).numpy()


def _latent_shape(model: TransformCodec, size: tuple[int, int]) -> tuple[int, int]:
    return tuple(-(-s // model.factor) * model.factor // 16 for s in size)


def symbols_check(all_symbols: list[dict[str, np.ndarray]]) -> str:
    """The first 16 hex digits of the sha256 of every symbol (a table mismatch passes it with
    probability 2^-64; the file checksum already covers damage)."""
    h = hashlib.sha256()
    for symbols in all_symbols:
        for key in sorted(symbols):
            h.update(np.ascontiguousarray(symbols[key], dtype="<i4").tobytes())
    return h.hexdigest()[:16]


def run_fingerprint(run: Run) -> bytes:
    return model_fingerprint(run.config.to_dict(), run.model)


def compress(run: Run, images: list[torch.Tensor], names: list[str], quality: int | None = None,
             refine_steps: int = 0, progress: bool = False) -> Container:
    """Code uint8 images (C, H, W), each of any size, at a quality level 1..Q (default: the highest);
    refine_steps > 0 fits each image's latents to it first (slower encoding, same decoder)."""
    model = codec_of(run)
    q = quality_index(model, quality)
    check_names(names, len(images))
    if refine_steps < 0:
        raise VaekitError(f"refinement steps must be 0 or more, got {refine_steps}")
    for image in images:
        if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] != model.image_shape[0]:
            raise DataError(f"this codec takes uint8 images with {model.image_shape[0]} channel(s)")
        if not (1 <= min(image.shape[1:]) and max(image.shape[1:]) <= MAX_SIDE):
            raise DataError(f"image sides must lie in 1..{MAX_SIDE}")
    coder, codec = AnsCoder(), LossyCoder(model)
    all_symbols = [codec.symbols(image, q, refine_steps)
                   for image in tqdm(images, desc="encoding", unit="image", disable=not progress, leave=False)]
    for symbols in reversed(all_symbols):
        codec.push(coder, symbols)
    meta = {"quality": q + 1, "names": pack_names(names), "sizes": [[h, w, n] for (h, w), n in run_lengths(
                [(int(im.shape[1]), int(im.shape[2])) for im in images])],
            "symbols_check": symbols_check(all_symbols), "run": str(Path(run.path).resolve())}
    return Container("transform", run_fingerprint(run), meta, to_bytes(coder.get_compressed()))


def decompress(run: Run, container: Container, source: str = "the file") -> tuple[list[torch.Tensor], list[str]]:
    """The decoded images (uint8 (C, H, W) each) and their names; any mismatch is a CompressedFileError."""
    if container.codec != "transform":
        raise CompressedFileError(f"{source} holds {container.codec} (lossless) data; decompress it with the "
                                  "lossless decoder")
    model = codec_of(run)
    check_model(container, run_fingerprint(run), source)
    meta = _checked_meta(container, model, source)
    q, codec = meta["quality"] - 1, LossyCoder(model)
    try:
        coder = AnsCoder(from_bytes(container.payload))
        all_symbols = [codec.pop(coder, _latent_shape(model, size)) for size in meta["sizes"]]
        ended = coder.is_empty()
    except (ValueError, KeyError, RuntimeError, AssertionError) as e:
        raise CompressedFileError(f"{source} could not be decoded ({e})") from None
    if not ended or symbols_check(all_symbols) != meta["symbols_check"]:
        raise CompressedFileError(f"{source} decoded to latents that fail its checksum: the probability tables "
                                  "differed from the encoder's (another torch or constriction build?); "
                                  "nothing was written")
    return [codec.pixels(s, q, size) for s, size in zip(all_symbols, meta["sizes"])], meta["names"]


def _checked_meta(container: Container, model: TransformCodec, source: str) -> dict:
    """Metadata the decoder can trust its loops, allocations and paths to."""
    meta = dict(container.meta)
    try:
        runs = [(int(h), int(w), int(n)) for h, w, n in meta["sizes"]]
        count = sum(n for _, _, n in runs)
        ok = (0 < count <= MAX_IMAGES and all(1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE and n >= 1 for h, w, n in runs))
        if ok:
            meta["sizes"] = [(h, w) for h, w, n in runs for _ in range(n)]
            meta["names"] = unpack_names(meta["names"], count)
        ok = (ok and 1 <= int(meta["quality"]) <= model.qualities and len(meta["names"]) == count
              and len(container.payload) % 4 == 0 and isinstance(meta["symbols_check"], str)
              and all(isinstance(n, str) and _plain_name(n) for n in meta["names"])
              and len(set(meta["names"])) == count)
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise CompressedFileError(f"{source} is corrupted (its metadata does not describe this codec's images)")
    return meta


@torch.no_grad()
def estimate(model: TransformCodec, x: torch.Tensor, quality: int, batch: int = 16) -> dict:
    """The model's own estimate at quality index `quality` (0-based) on float images (N, C, H, W):
    mean bits per pixel from its entropy model (rounded latents, no file) and mean PSNR (dB)."""
    model.eval()
    bits, psnr = [], []
    for start in range(0, len(x), batch):
        chunk = x[start:start + batch]
        out = model(chunk, torch.full((len(chunk),), quality, dtype=torch.long))
        bits.append(out.rate_bits / (chunk.shape[-2] * chunk.shape[-1]))
        psnr.append(psnr_db(out.x_hat.clamp(0, 1), chunk))
    return {"bpp": torch.cat(bits).mean().item(), "psnr_db": torch.cat(psnr).mean().item()}
