"""Run a fixed-size model over an image of any size: overlapping tiles blended without seams.

Tiles overlap by at least `overlap` input pixels; each output tile is weighted by a window that
ramps linearly from near zero at its edges to one inside, and the weights are normalized per
pixel. Across an overlap the result therefore moves gradually from one tile's output to the
next one's (no visible seam), and where every tile agrees (a constant image) it is exactly
their common value. Images smaller than a tile are padded by reflection and cropped back.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def tile_starts(size: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Tile positions covering [0, size): neighbours overlap by >= `overlap` (when `align` allows),
    the last tile ends at `size`, and every start except the last is a multiple of `align`
    (JPEG's 8x8 grid)."""
    if size <= tile:
        return [0]
    stride = max(align, (tile - overlap) // align * align)
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def window(length: int, ramp: int) -> torch.Tensor:
    """1-D blending weights: (i + 0.5) / ramp near both ends, capped at 1; positive everywhere."""
    i = torch.arange(length, dtype=torch.float32) + 0.5
    return (torch.minimum(i, length - i) / max(1, ramp)).clamp(max=1.0)


def pad_to(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(C, h, w) padded at the bottom/right to at least (height, width), by reflection where it can."""
    c, h, w = image.shape
    pad = (0, max(0, width - w), 0, max(0, height - h))
    if not any(pad):
        return image
    mode = "reflect" if pad[1] < w and pad[3] < h else "replicate"
    return F.pad(image[None], pad, mode=mode)[0]


@torch.no_grad()
def run_tiled(fn: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, tile: tuple[int, int], scale: int = 1,
              overlap: int | None = None, align: int = 1, batch: int = 32) -> torch.Tensor:
    """fn maps tiles (N, C, th, tw) to (N, C_out, th*scale, tw*scale); returns fn over the whole image
    (C, h, w) -> (C_out, h*scale, w*scale). Default overlap: a quarter of the tile."""
    c, h, w = image.shape
    th, tw = tile
    overlap = max(1, min(th, tw) // 4) if overlap is None else overlap
    padded = pad_to(image, th, tw)
    ys = tile_starts(padded.shape[1], th, overlap, align)
    xs = tile_starts(padded.shape[2], tw, overlap, align)
    weight_tile = window(th * scale, overlap * scale)[:, None] * window(tw * scale, overlap * scale)[None, :]
    out = weight = None
    spots = [(y, x) for y in ys for x in xs]
    for start in range(0, len(spots), batch):
        chunk = spots[start:start + batch]
        results = fn(torch.stack([padded[:, y:y + th, x:x + tw] for y, x in chunk]))
        if out is None:
            out = results.new_zeros(results.shape[1], padded.shape[1] * scale, padded.shape[2] * scale)
            weight = results.new_zeros(1, *out.shape[1:])
        for (y, x), result in zip(chunk, results):
            area = (slice(None), slice(y * scale, (y + th) * scale), slice(x * scale, (x + tw) * scale))
            out[area] += result * weight_tile
            weight[area] += weight_tile
    return (out / weight)[:, :h * scale, :w * scale]


def run_batch(fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, tile: tuple[int, int],
              scale: int = 1, align: int = 1) -> torch.Tensor:
    """fn over a batch (B, C, h, w) at once when the images are tile-sized, else tile by tile over each."""
    if tuple(images.shape[2:]) == tuple(tile):
        return fn(images)
    return torch.stack([run_tiled(fn, image, tile, scale, align=align) for image in images])
