"""What a conditional VAE is conditioned on: y, a degraded copy of the clean image x.

Each condition knows how to make y from a clean batch (so training needs only clean images:
pairs are made on the fly, as `ConditionalVAE.forward` does) and how to show y to the networks
at the image's full resolution (`full_res`). A user's degraded image is y as it is, except for
noise, whose y also carries sigma (`Noise.observe`), and occlusion, whose y carries the mask
(`Occlusion.observe`). Images are (B, C, H, W) in [0, 1]; y is
quantized to 8 bits, as a degraded image read from a file would be.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from vaekit.corruption import MASKS, jpeg
from vaekit.errors import ConfigError, DataError


def quantize_8bit(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round() / 255


def shape_text(shape) -> str:
    return "x".join(map(str, shape))


class Condition:
    """y = degrade(x); subclasses set `kind`, `shape` (y's C, H, W) and `image_channels` (y's image part).
    `residual`: y's pixels are close to x's (low-res, JPEG), so the decoder should only learn the
    difference; noisy pixels are not (measured on MNIST: +1.1 dB with it for x4 super-resolution,
    -1.4 dB for sigma = 0.5 noise)."""

    kind = ""
    residual = True

    def __init__(self, image_shape: tuple[int, int, int]):
        self.image_shape = tuple(image_shape)
        self.shape = self.image_shape
        self.image_channels = self.image_shape[0]

    @property
    def channels(self) -> int:
        """Channels of `full_res(y)`: what the encoder and decoder see besides x and z."""
        return self.shape[0]

    def degrade(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def full_res(self, y: torch.Tensor) -> torch.Tensor:
        """y at the clean image's resolution, (B, channels, H, W)."""
        return y

    def check(self, y: torch.Tensor, shape) -> None:
        if y.dim() != 4 or tuple(y.shape[1:]) != tuple(shape):
            got = shape_text(y.shape[1:]) if y.dim() == 4 else f"a {y.dim()}-D tensor"
            raise DataError(f"this model's {self.kind} condition takes images of shape {shape_text(shape)} "
                            f"(channels x height x width), got {got}")


class Downscale(Condition):
    """Super-resolution: y is x shrunk by `scale`, by block averaging ("area") or antialiased bicubic
    (the usual Set5/Set14 protocol); the networks see y upsampled by bicubic interpolation."""

    kind = "downscale"

    def __init__(self, image_shape, scale: int, resample: str = "area"):
        super().__init__(image_shape)
        c, h, w = self.image_shape
        if h % scale or w % scale:
            raise ConfigError(f"model.condition_scale {scale} must divide the image size {h}x{w}")
        self.scale, self.resample = scale, resample
        self.shape = (c, h // scale, w // scale)

    def degrade(self, x, generator=None):
        if self.resample == "area":
            return quantize_8bit(F.avg_pool2d(x, self.scale))
        return quantize_8bit(F.interpolate(x, size=self.shape[1:], mode="bicubic", antialias=True,
                                           align_corners=False))

    def full_res(self, y):
        return F.interpolate(y, size=self.image_shape[1:], mode="bicubic", align_corners=False).clamp(0, 1)


class Jpeg(Condition):
    """Repair: y is x through a real JPEG encode/decode at `quality`."""

    kind = "jpeg"

    def __init__(self, image_shape, quality: int):
        super().__init__(image_shape)
        self.quality = quality

    def degrade(self, x, generator=None):
        return jpeg(x.cpu(), self.quality).to(x)


class Noise(Condition):
    """Denoising: y is x + N(0, sigma^2) clipped to [0, 1], plus a constant channel holding sigma, so
    the model knows the noise level (FFDNet's noise map). With `random`, each image draws its sigma
    from U(0, sigma), and one model serves every level up to sigma."""

    kind = "noise"
    residual = False

    def __init__(self, image_shape, sigma: float, random: bool = False):
        super().__init__(image_shape)
        c, h, w = self.image_shape
        self.sigma, self.random = sigma, random
        self.shape = (c + 1, h, w)

    def with_sigma(self, image: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) noisy images and (B,) sigmas -> y (B, C + 1, H, W)."""
        sigma_map = sigma.view(-1, 1, 1, 1).to(image.dtype).expand(len(image), 1, *image.shape[2:])
        return torch.cat([image, sigma_map], dim=1)

    def degrade(self, x, generator=None):
        sigma = torch.full((len(x),), self.sigma)
        if self.random:
            sigma = sigma * torch.rand(len(x), generator=generator)
        noise = torch.randn(x.shape, generator=generator).to(x)  # drawn on the CPU, as the trainer's generator is
        sigma = sigma.to(x)
        return self.with_sigma(quantize_8bit(x + sigma.view(-1, 1, 1, 1) * noise), sigma)

    def observe(self, image, sigma: float | torch.Tensor | None = None):
        """y for noisy images with noise level `sigma` (a number, or one per image; default: the model's)."""
        self.check(image, self.image_shape)
        sigma = torch.as_tensor(self.sigma if sigma is None else sigma, dtype=image.dtype, device=image.device)
        return self.with_sigma(image, sigma.expand(len(image)))


class Occlusion(Condition):
    """Inpainting: y is x with random regions hidden (set to 0) plus the mask as one more channel
    (1 = hidden), so the model tells a black pixel from a missing one. `mask` names the regions
    (blocks, centre, strokes or pixels: vaekit.corruption.MASKS, as the occlusion mechanism draws
    them) and `fraction` their share of each training image."""

    kind = "occlusion"

    def __init__(self, image_shape, mask: str = "blocks", fraction: float = 0.25):
        super().__init__(image_shape)
        c, h, w = self.image_shape
        self.mask, self.fraction = mask, fraction
        self.shape = (c + 1, h, w)

    @staticmethod
    def hide(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images and (B, 1, H, W) masks -> y (B, C + 1, H, W)."""
        return torch.cat([image * (1 - mask), mask], dim=1)

    def degrade(self, x, generator=None):
        return self.hide(x, MASKS[self.mask](x.shape, self.fraction, generator).to(x))

    def observe(self, image, mask):
        """y for images (B, C, H, W) whose pixels are unknown where masks (B, 1, H, W) are 1."""
        self.check(image, self.image_shape)
        return self.hide(image, mask.to(image))


def build_condition(cfg, image_shape) -> Condition:
    """The condition a ModelConfig names (cfg.condition != "none")."""
    if cfg.condition == "downscale":
        return Downscale(image_shape, cfg.condition_scale, cfg.condition_resample)
    if cfg.condition == "jpeg":
        return Jpeg(image_shape, cfg.condition_jpeg_quality)
    if cfg.condition == "noise":
        return Noise(image_shape, cfg.condition_noise_sigma, cfg.condition_noise_random)
    if cfg.condition == "occlusion":
        return Occlusion(image_shape, cfg.condition_mask, cfg.condition_mask_fraction)
    raise ConfigError(f"unknown condition {cfg.condition!r}; choose one of downscale, jpeg, noise, occlusion")
