"""The one in-memory form every data source returns."""

from dataclasses import dataclass

import torch


@dataclass
class ImageDataset:
    """Whole dataset as one uint8 tensor: the datasets vaekit targets fit in memory, and
    keeping bytes (not floats) lets each model choose its own scaling and binarization."""

    images: torch.Tensor  # uint8 (N, C, H, W), contiguous, C in {1, 3}
    labels: torch.Tensor | None  # int64 (N,) classes, or (N, F) factor indices
    name: str
    paths: list[str] | None = None  # source file of each image (folders only)
    factor_names: tuple[str, ...] | None = None  # names of the label columns when (N, F)

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.images.shape[1:])
