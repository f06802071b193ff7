"""argparse types for the numbers a command can use: a value outside its range is refused while
the flags are parsed (argparse names the flag, exit 2), before any model is loaded or file written."""
from __future__ import annotations

import argparse
import math

from vaekit.config import MAX_SEED


def whole(low: int, high: int | None = None):
    """An integer within [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}, got {value}")
        return value

    return parse


def number(low: float | None = None, high: float | None = None, *, above: float | None = None,
           below: float | None = None):
    """A finite float within [low, high] and (above, below); each bound optional."""
    bounds = ((low, "at least", lambda v, b: v < b), (above, "above", lambda v, b: v <= b),
              (high, "at most", lambda v, b: v > b), (below, "below", lambda v, b: v >= b))

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        for bound, words, outside in bounds:
            if bound is not None and outside(value, bound):
                raise argparse.ArgumentTypeError(f"must be {words} {bound:g}, got {value:g}")
        return value

    return parse


def whole_list(text: str) -> list[int]:
    """Comma-separated non-negative integers, such as latent dimensions: 0,3,7."""
    try:
        values = [int(item) for item in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected numbers of at least 0, got {text!r}")
    return values


COUNT = whole(1)  # images, steps, neighbours, threads, batch sizes
SEED = whole(0, MAX_SEED)  # as the config's seed
