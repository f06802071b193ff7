"""Batches straight from in-memory uint8 tensors: no per-image Python calls, no DataLoader."""
from __future__ import annotations

from typing import Iterator

import torch

VALIDATION_SEED = 12345  # the validation split never moves with the training seed
EVAL_BINARIZE_SEED = 0  # the literature's protocol: torch.manual_seed(0); torch.bernoulli(x_test)


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 in [0, 1]."""
    return images.float().div_(255)


def binarize_once(images: torch.Tensor, seed: int = EVAL_BINARIZE_SEED) -> torch.Tensor:
    """A fixed binarization of uint8 images, identical to `torch.manual_seed(seed); torch.bernoulli(x)`."""
    return torch.bernoulli(to_unit(images), generator=torch.Generator().manual_seed(seed))


def split_validation(images: torch.Tensor, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, validation) by a fixed permutation; the same images are held out in every run."""
    n_val = int(round(len(images) * fraction))
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(VALIDATION_SEED))
    return images[order[n_val:]], images[order[:n_val]]


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """One generator per (seed, epoch), so a resumed run draws exactly what an unbroken one would."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**63)  # in range for any seed


def binarize_uint8(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """x ~ Bernoulli(pixel / 255), drawn straight from the uint8 pixels: a uniform 16-bit integer u
    is below pixel * 65536 / 255 with a probability within 2e-5 of pixel / 255 (exactly 0 and 1 at
    the ends). Four draws come from each 64-bit word instead of one random integer per pixel: batches
    are drawn 1.6x faster (benchmarks/mlp_step_parts.py), a few percent of a small model's step."""
    n = images.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-2**63, None, generator=generator)
    u = words.view(torch.int16)[:n].view(images.shape).float()  # uniform on -32768 ... 32767
    return (u < images.float().mul_(65536 / 255).sub_(32768)).float()


def batches(images: torch.Tensor, batch_size: int, generator: torch.Generator, binarize: bool) -> Iterator[torch.Tensor]:
    """Shuffled float batches in [0, 1]; re-binarized each time when `binarize` (dynamic binarization)."""
    order = torch.randperm(len(images), generator=generator)
    for start in range(0, len(images), batch_size):
        x = images.index_select(0, order[start:start + batch_size])  # 10x faster than images[idx] here
        yield binarize_uint8(x, generator) if binarize else to_unit(x)
