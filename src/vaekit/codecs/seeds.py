"""The first images of a bits-back stream, coded without the VAE so that the rest have bits to pop.

Bits-back coding pops each image's latent off the stack before it pushes the image, so the
first image needs bits on the stack already: about latents x latent_bits of them, tens of
kilobits for a hierarchical model. BB-ANS starts from random words, which then cost their full
length. HiLLoC (Townsend et al. 2020) instead codes the first images with a classic codec; their
bits are data, so they are paid for only by the classic codec's rate exceeding the VAE's.

    seed = seed_coding(pixels)       # from the run's pixel codec
    m = seed.count_for(images, bits)  # first images to code this way: at least `bits` on the stack
    seed.codec(m, shape).push(coder, images[:m]); ...; images = seed.codec(m, shape).pop(coder)

Binary images use an adaptive context model (JBIG-style: each pixel's probability of a 1 is
counted from earlier pixels with the same ten causal neighbours), 8-bit images LZMA.
"""
from __future__ import annotations

import lzma

import constriction
import numpy as np
import torch

from vaekit.codecs.ans import Codec, bernoulli, uniform
from vaekit.errors import VaekitError

# (row, column) offsets of the causal neighbours that make a binary pixel's context (bit k from
# TEMPLATE[k]); the first _LEFT are the pixels just left of it in its own row, nearest first
TEMPLATE = ((0, -1), (0, -2), (0, -3), (0, -4), (-1, -2), (-1, -1), (-1, 0), (-1, 1), (-1, 2), (-2, -1))
_LEFT = 4
_PAD_TOP, _PAD_SIDE = 2, 4
# preset 9e with a 4 MiB window: the seed is small, and the default 64 MiB costs 0.7 GB per call
_LZMA = {"format": lzma.FORMAT_RAW,
         "filters": [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": 2**22}]}


class BinaryContextSeed:
    """Binary images (0 or 255) under an adaptive context model, all planes in raster order.

    The probability of a 1 is (ones + 1/2) / (seen + 1) over the earlier pixels with the same
    context (the Krichevsky-Trofimov estimator). The encoder computes every pixel's probability
    at once; the decoder, which learns the pixels one by one, recomputes them one by one with
    the same float64 arithmetic, so both build the same tables."""

    name = "context"

    def bits(self, images: torch.Tensor) -> np.ndarray:
        """What each image costs, in bits, (N,): the -log2 of its pixels' probabilities."""
        bits, _ = self._probabilities(images)
        return bits.reshape(len(images), -1).sum(1) if len(images) else np.zeros(0)

    def count_for(self, images: torch.Tensor, bits: float) -> int:
        """The fewest first images that hold `bits` (all of them if none do). An image's cost depends
        only on the images before it, so doubling prefixes are scored, not the whole set."""
        m = min(len(images), 64)
        while True:
            cumulative = np.cumsum(self.bits(images[:m]))
            if m == len(images) or cumulative[-1] >= bits:
                return _first_reaching(cumulative, bits)
            m = min(len(images), 2 * m)

    def codec(self, n: int, shape: tuple[int, ...]) -> Codec:
        def push(coder, images):
            _, p_one = self._probabilities(images)
            bernoulli(p_one).push(coder, (images > 0).flatten().numpy())

        def pop(coder):
            h, w = shape[1:]
            planes = np.zeros((n * shape[0], _PAD_TOP + h, w + 2 * _PAD_SIDE), dtype=np.int64)
            ones, seen = [0] * 2 ** len(TEMPLATE), [0] * 2 ** len(TEMPLATE)
            family, left_mask = constriction.stream.model.Bernoulli(perfect=False), (1 << _LEFT) - 1
            for plane in planes:
                for i in range(_PAD_TOP, plane.shape[0]):
                    above = np.zeros(w, dtype=np.int64)  # the context bits from the rows above
                    for k, (dy, dx) in enumerate(TEMPLATE[_LEFT:], start=_LEFT):
                        above |= plane[i + dy, _PAD_SIDE + dx:_PAD_SIDE + dx + w] << k
                    row, left = plane[i], 0
                    for j, c_above in enumerate(above.tolist()):
                        c = c_above | left
                        bit = int(coder.decode(family, np.array([(ones[c] + 0.5) / (seen[c] + 1.0)]))[0])
                        row[_PAD_SIDE + j], ones[c], seen[c] = bit, ones[c] + bit, seen[c] + 1
                        left = ((left << 1) | bit) & left_mask
            inner = planes[:, _PAD_TOP:, _PAD_SIDE:_PAD_SIDE + w]
            return torch.from_numpy((inner * 255).astype(np.uint8)).view(n, *shape)

        return Codec(push, pop)

    @staticmethod
    def _probabilities(images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Every pixel's bits and probability of a 1, in coding order (flattened (N, C, H, W))."""
        x = (images > 0).reshape(-1, *images.shape[2:]).numpy().astype(np.int64)  # (planes, H, W)
        h, w = x.shape[1:]
        padded = np.pad(x, ((0, 0), (_PAD_TOP, 0), (_PAD_SIDE, _PAD_SIDE)))
        context = np.zeros_like(x)
        for k, (dy, dx) in enumerate(TEMPLATE):
            context |= padded[:, _PAD_TOP + dy:_PAD_TOP + dy + h, _PAD_SIDE + dx:_PAD_SIDE + dx + w] << k
        c, s = context.ravel(), x.ravel()
        order = np.argsort(c, kind="stable")  # pixels grouped by context, in coding order within each
        group_start = np.r_[0, np.flatnonzero(np.diff(c[order])) + 1]
        first = np.repeat(group_start, np.diff(np.r_[group_start, len(c)]))
        ones_before = np.cumsum(s[order]) - s[order] - np.r_[0, np.cumsum(s[order])][first]
        p_sorted = (ones_before + 0.5) / (np.arange(len(c)) - first + 1.0)
        p_one = np.empty(len(c))
        p_one[order] = p_sorted
        bits = -np.log2(np.where(s == 1, p_one, 1 - p_one))
        return bits, p_one


class LzmaSeed:
    """8-bit images as LZMA bytes (raw LZMA2 stream, preset 9e), each byte pushed as 8 bits,
    under their length (two 16-bit halves)."""

    name = "lzma"

    def count_for(self, images: torch.Tensor, bits: float) -> int:
        """The fewest first images whose LZMA stream holds `bits` (all of them if none does):
        doubling, then bisection, since the stream grows with the images in it."""
        def holds(m):
            return 8 * len(_lzma(images[:m])) >= bits

        low, high = 0, min(1, len(images))  # images[:low] fall short; images[:high] hold enough, or are all
        while high < len(images) and not holds(high):
            low, high = high, min(len(images), 2 * high)
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (low, middle) if holds(middle) else (middle, high)
        return high

    def codec(self, n: int, shape: tuple[int, ...]) -> Codec:
        def push(coder, images):
            data = np.frombuffer(_lzma(images), dtype=np.uint8)
            uniform(256, len(data)).push(coder, data)
            uniform(2**16, 2).push(coder, np.array([len(data) & 0xFFFF, len(data) >> 16]))

        def pop(coder):
            low, high = uniform(2**16, 2).pop(coder)
            length = int(low) + (int(high) << 16)
            if 8 * length > coder.num_valid_bits() + 64:  # damaged: more bytes than the stack holds
                raise VaekitError("the first images' LZMA stream is damaged")
            data = uniform(256, length).pop(coder).astype(np.uint8).tobytes()
            expected = n * int(np.prod(shape))
            try:
                raw = lzma.LZMADecompressor(**_LZMA).decompress(data, expected + 1)
            except lzma.LZMAError:
                raw = b""
            if len(raw) != expected:
                raise VaekitError("the first images' LZMA stream is damaged")
            return torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(n, *shape)

        return Codec(push, pop)


def _lzma(images: torch.Tensor) -> bytes:
    return lzma.compress(images.contiguous().numpy().tobytes(), **_LZMA)


def _first_reaching(cumulative: np.ndarray, bits: float) -> int:
    """The fewest leading items whose cumulative sum reaches bits (all of them if none does)."""
    return min(len(cumulative), int(np.searchsorted(cumulative, bits)) + 1)


def seed_coding(pixels_name: str):
    """The seed codec for a pixel codec's name ("bernoulli" or "logistic-mixture")."""
    return BinaryContextSeed() if pixels_name == "bernoulli" else LzmaSeed()
