"""Size and channel conversions on uint8 image batches, the same for every source."""

import torch
import torch.nn.functional as F

LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, the weights Pillow uses for RGB -> L
CHUNK = 2048  # images resized at a time, to bound the float copy's memory


def to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """(N, C, H, W) uint8 -> (N, channels, H, W): grey is repeated, colour takes its luma."""
    if images.shape[1] == channels:
        return images
    if channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    weights = torch.tensor(LUMA).view(1, 3, 1, 1)
    luma = (images.float() * weights).sum(dim=1, keepdim=True)
    return luma.round_().clamp_(0, 255).to(torch.uint8)


def resize_square(images: torch.Tensor, size: int) -> torch.Tensor:
    """Scale the shorter side to `size` (antialiased bicubic) and centre-crop to a square."""
    n, c, h, w = images.shape
    if (h, w) == (size, size):
        return images
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    top, left = (new_h - size) // 2, (new_w - size) // 2
    out = torch.empty((n, c, size, size), dtype=torch.uint8)
    for start in range(0, n, CHUNK):
        batch = images[start : start + CHUNK].float()
        batch = F.interpolate(batch, size=(new_h, new_w), mode="bicubic", antialias=True)
        crop = batch[:, :, top : top + size, left : left + size]
        out[start : start + CHUNK] = crop.round_().clamp_(0, 255).to(torch.uint8)
    return out
