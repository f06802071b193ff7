"""Codecs on an ANS stack, craystack-style: a codec is a pair of inverse functions.

`push(coder, symbols)` writes symbols onto the stack and `pop(coder)` takes them back off, so
`pop` after `push` returns the same symbols and leaves the stack as it was. Bigger codecs are
composed from these small ones (see `vaekit.codecs.bitsback`). The stack is constriction's
`AnsCoder` (32-bit words, 24-bit probabilities), which a push or pop mutates in place.

Every table handed to constriction here must be computed bit-for-bit alike by the encoder and
the decoder; `on_grid` is the tool for that (see its docstring).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import constriction
import numpy as np
import torch

AnsCoder = constriction.stream.stack.AnsCoder
_model = constriction.stream.model

GRID_BITS = 12  # distribution parameters are rounded to multiples of 2**-GRID_BITS


@dataclass(frozen=True)
class Codec:
    """push(coder, symbols) -> None and pop(coder) -> symbols, inverse to each other."""

    push: Callable[[AnsCoder, np.ndarray], None]
    pop: Callable[[AnsCoder], np.ndarray]


def on_grid(values: np.ndarray, bits: int = GRID_BITS) -> np.ndarray:
    """Round distribution parameters to a fixed grid before any table is built from them.

    The network that predicts them may differ in the last bits between machines or thread
    counts (its sums are reduced in different orders). Computed in float64, those differences
    are ~1e-16, so after rounding to multiples of 2**-12 the encoder and decoder agree unless a
    value lies within 1e-16 of a rounding boundary; everything after this point is elementwise,
    which does not depend on the thread count.
    """
    scale = float(2**bits)
    return np.round(np.asarray(values, dtype=np.float64) * scale) / scale


@contextmanager
def one_thread() -> Iterator[None]:
    """Elementwise torch kernels split work between threads and compute the tail of each piece
    with scalar code that may round differently from the vector code; one thread fixes the split."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def categorical(probs: np.ndarray) -> Codec:
    """One symbol in {0..K-1} per row of probs (N, K); rows need not be normalized.
    constriction gives every symbol at least the smallest representable probability."""
    family = _model.Categorical(perfect=False)
    probs = np.ascontiguousarray(probs, dtype=probs.dtype if probs.dtype in (np.float32, np.float64) else np.float64)

    def push(coder, symbols):
        coder.encode_reverse(np.ascontiguousarray(symbols, dtype=np.int32).ravel(), family, probs)

    def pop(coder):
        return coder.decode(family, probs)

    return Codec(push, pop)


def bernoulli(p_one: np.ndarray) -> Codec:
    """Binary symbols, one per entry of p_one (N,), the probability of a 1."""
    family = _model.Bernoulli(perfect=False)
    p_one = np.ascontiguousarray(p_one, dtype=np.float64).ravel()

    def push(coder, symbols):
        coder.encode_reverse(np.ascontiguousarray(symbols, dtype=np.int32).ravel(), family, p_one)

    def pop(coder):
        return coder.decode(family, p_one)

    return Codec(push, pop)


def uniform(size: int, n: int) -> Codec:
    """n symbols, each uniform on {0..size-1}: log2(size) bits apiece."""
    model = _model.Uniform(size)

    def push(coder, symbols):
        coder.encode_reverse(np.ascontiguousarray(symbols, dtype=np.int32).ravel(), model)

    def pop(coder):
        return coder.decode(model, n)

    return Codec(push, pop)


def initial_words(n: int, seed: int = 0) -> np.ndarray:
    """The seeded random words a bits-back stream starts from, so that the first image has bits
    to pop its latent from; the decoder finds exactly these words left at the end. The last word
    is odd, because constriction drops trailing zero words."""
    words = np.random.default_rng(seed).integers(0, 2**32, size=n, dtype=np.uint32)
    if n:
        words[-1] |= 1
    return words


def to_bytes(words: np.ndarray) -> bytes:
    """A stack's words in little-endian byte order, whatever this machine's."""
    return np.asarray(words, dtype="<u4").tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<u4").astype(np.uint32)
