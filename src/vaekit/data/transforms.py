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


def resize(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, C, H, W) uint8 -> (N, C, height, width) uint8, antialiased bicubic."""
    out = torch.empty((len(images), images.shape[1], height, width), dtype=torch.uint8)
    for start in range(0, len(images), CHUNK):
        batch = F.interpolate(images[start : start + CHUNK].float(), size=(height, width), mode="bicubic",
                              antialias=True)
        out[start : start + CHUNK] = batch.round_().clamp_(0, 255).to(torch.uint8)
    return out


def resize_square(images: torch.Tensor, size: int) -> torch.Tensor:
    """Scale the shorter side to `size` (antialiased bicubic) and centre-crop to a square."""
    h, w = images.shape[2:]
    if (h, w) == (size, size):
        return images
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return resize(images, new_h, new_w)[:, :, top : top + size, left : left + size].contiguous()
