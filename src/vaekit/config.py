"""Typed, strict run configuration: defaults < YAML file < flags < --set key=value.

Every field carries its help text and range in its metadata; the CLI turns each field into
a flag from that, so a new field is a new flag with no other edit.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vaekit.errors import ConfigError

MAX_SEED = 2**64 - 1  # the largest seed torch.Generator.manual_seed takes


def option(default: Any, help: str, *, flag: str | None = None, choices: tuple | None = None,
           low: float | None = None, high: float | None = None, cli: bool = True) -> Any:
    """A config field: its default, help text, optional flag name, allowed values or range."""
    meta = {"help": help, "flag": flag, "choices": choices, "low": low, "high": high, "cli": cli}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class DataConfig:
    data: str = option("digits", "dataset name (mnist, fashion-mnist, kmnist, digits, sprites) or a path to "
                       "an image folder or .npy/.npz file")
    data_dir: str | None = option(None, "folder holding existing IDX files (skips the download)")
    image_size: int | None = option(None, "resize images to this square size (needed for folders of mixed sizes)", low=2)
    channels: int | None = option(None, "convert images to 1 (grayscale) or 3 (RGB) channels", choices=(1, 3, None))
    binarize: bool | None = option(None, "re-binarize each training batch x ~ Bernoulli(x) (auto: on for the "
                                   "Bernoulli likelihood)")
    val_fraction: float = option(0.05, "fraction of the training images held out (fixed split) for validation",
                                 low=0.0, high=0.5)
    limit: int | None = option(None, "use at most this many training images", low=1)
    mirror: str | None = option(None, "base URL to download IDX datasets from (default: the public mirrors)")


@dataclass(frozen=True)
class ModelConfig:
    arch: str = option("mlp", "architecture: mlp, conv, hvae (deep hierarchical), or vaegan (a VAE trained with a "
                       "discriminator, Larsen et al. 2016); factorized or hyperprior: a lossy learned transform "
                       "codec (Balle et al. 2017, 2018)", flag="model",
                       choices=("mlp", "conv", "hvae", "vaegan", "factorized", "hyperprior"))
    latent_dim: int = option(20, "number of latent dimensions (hvae: latent channels per group)", low=1)
    hidden_dims: tuple[int, ...] | None = option(None, "hidden layer sizes (mlp; default 400) or conv widths "
                                                 "(conv; default 32,64)")
    fc_dim: int = option(256, "fully connected layer between conv features and the latent (conv; 0: none)", low=0)
    likelihood: str = option("bernoulli", "pixel likelihood",
                             choices=("bernoulli", "gaussian", "gaussian-learned", "logistic-mixture"))
    gaussian_std: float = option(0.1, "fixed standard deviation of the gaussian likelihood", low=1e-4)
    mixture_components: int = option(5, "components of the discretized logistic mixture", low=1)
    hvae_width: int = option(64, "hvae: channels of the residual stream", low=1)
    hvae_middle: int = option(16, "hvae: channels inside each residual cell", low=1)
    hvae_groups: tuple[int, ...] = option((2, 4, 4), "hvae: latent groups per resolution, coarsest first "
                                          "(its length sets the number of resolutions)")
    hvae_encoder_blocks: int = option(2, "hvae: residual cells per resolution in the bottom-up pass", low=0)
    hvae_stride: int = option(1, "hvae: the finest level works at 1/stride of the image's resolution, through "
                              "pixel (un)shuffle: stride^2 fewer positions per convolution", low=1)
    hvae_activation: str = option("gelu", "hvae: the cells' nonlinearity (gelu as VDVAE; relu and silu are "
                                  "cheaper on a CPU)", choices=("gelu", "silu", "relu"))
    condition: str = option("none", "conditional VAE (mlp or conv): q(z|x,y), p(x|z,y) with y a degraded copy of "
                            "each clean image: downscale (super-resolution), jpeg (repair), noise (denoising), "
                            "occlusion (inpainting)", choices=("none", "downscale", "jpeg", "noise", "occlusion"))
    condition_scale: int = option(4, "downscale: the super-resolution factor", low=2)
    condition_resample: str = option("area", "downscale: area (mean of scale x scale blocks) or bicubic "
                                     "(antialiased, the Set5/Set14 protocol)", choices=("area", "bicubic"))
    condition_jpeg_quality: int = option(20, "jpeg: the JPEG quality of the images the model repairs", low=1, high=95)
    condition_noise_sigma: float = option(0.2, "noise: Gaussian sigma (pixels in [0, 1]) of the images the model "
                                          "denoises; the model also sees sigma", low=0.0)
    condition_noise_random: bool = option(False, "noise: draw each training image's sigma from U(0, sigma), so "
                                          "one model serves every level up to it")
    condition_mask: str = option("blocks", "occlusion: the hidden regions of the training images: blocks (one "
                                 "square anywhere), centre (one square in the middle), strokes (free-form) or "
                                 "pixels", choices=("blocks", "centre", "strokes", "pixels"))
    condition_mask_fraction: float = option(0.25, "occlusion: about this fraction of each training image is hidden",
                                            low=0.0, high=1.0)
    condition_prior: str = option("standard", "conditional VAE: the prior p(z) = N(0, I) (standard), or a network "
                                  "p(z | y) (learned: Sohn et al.'s prior network; restoring then draws z from it)",
                                  choices=("standard", "learned"))
    cvae_width: int = option(64, "conv conditional VAE: channels of the decoder's trunk", low=1)
    cvae_blocks: int = option(4, "conv conditional VAE: residual cells in that trunk", low=0)
    cvae_cell_width: int | None = option(None, "conv conditional VAE: channels inside each cell's 3x3 "
                                         "convolutions (default: a quarter of the trunk, VDVAE's bottleneck; the "
                                         "trunk's full width gives FFDNet-like capacity, and 3x3 convolutions "
                                         "that cost 16x as much)", low=1)
    cvae_stride: int = option(1, "conv conditional VAE: the trunk and encoder work at 1/stride of the image's "
                              "resolution, through pixel (un)shuffle (ESPCN, FFDNet): stride^2 fewer positions",
                              low=1)
    condition_residual: str = option("auto", "conditional VAE: the decoder learns only what y lost (auto: on for "
                                     "downscale, jpeg and occlusion, off for noise)", choices=("auto", "on", "off"))
    tiled: bool = option(False, "restoration: the model was trained on crops of larger photos, so the tasks run "
                         "it on overlapping tiles of an image of any size")
    lmbda: tuple[float, ...] = option((0.0035, 0.0067, 0.013, 0.025), "codec: rate-distortion trade-offs, one "
                                      "quality level per value, lowest rate first (loss: bpp + lambda * 255^2 * MSE)")
    codec_channels: int = option(64, "codec: channels N of the analysis/synthesis transforms and the hyperprior",
                                 low=1)
    codec_latent: int = option(96, "codec: channels M of the quantized latent y", low=1)
    codec_shortcut: str = option("none", "codec: dct adds a learned linear block transform beside the analysis "
                                 "and synthesis transforms, starting as the 16x16 DCT (JPEG's transform), so "
                                 "short runs code well from the first steps", choices=("none", "dct"))
    vaegan_base: str = option("conv", "vaegan: the encoder/decoder architecture the discriminator is added to",
                              choices=("conv", "mlp"))
    disc_arch: str = option("conv", "vaegan: discriminator architecture (mlp: much cheaper for small images on "
                            "a CPU)", choices=("conv", "mlp"))
    disc_widths: tuple[int, ...] = option((32, 64, 128), "vaegan: discriminator widths (conv: one stride-2 4x4 conv "
                                          "each; mlp: hidden layer sizes); the last layer's features are the "
                                          "learned similarity metric")
    image_shape: tuple[int, ...] | None = option(None, "channels, height, width (set from the data)", cli=False,
                                                 low=1)

    def __post_init__(self):
        for name in ("hidden_dims", "hvae_groups", "disc_widths"):
            sizes = getattr(self, name)
            if sizes is not None and (not sizes or min(sizes) < 1):
                raise ConfigError(f"model.{name} must be positive integers, got {sizes}")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = option(10, "passes over the training images", low=1)
    batch_size: int = option(128, "images per step", low=1)
    lr: float = option(1e-3, "peak learning rate (AdamW)", low=0.0)
    weight_decay: float = option(0.0, "AdamW weight decay", low=0.0)
    lr_schedule: str = option("constant", "learning-rate schedule after warm-up", choices=("constant", "cosine"))
    warmup_steps: int = option(0, "linear learning-rate warm-up steps", low=0)
    grad_clip: float | None = option(None, "clip the gradient norm to this value", low=0.0)
    skip_grad_norm: float | None = option(None, "skip updates whose gradient norm exceeds this (outlier batches "
                                          "in deep VAEs, as VDVAE does)", low=0.0)
    ema_decay: float | None = option(None, "keep an exponential moving average of the weights (e.g. 0.999); "
                                     "evaluation and tasks use it", low=0.0, high=1.0)
    ema_every: int = option(1, "fold the weights into the EMA every this many steps, its decay compounded to "
                            "match: a cheaper average for small models, whose step the pass over the weights "
                            "slows (docs/benchmarks.md)", low=1)
    beta: float = option(1.0, "weight of the KL term (beta-VAE)", low=0.0)
    kl_warmup_epochs: float = option(0.0, "ramp the KL weight linearly from 0 to beta over this many epochs", low=0.0)
    free_bits: float = option(0.0, "minimum KL per latent dim in nats (batch average) against posterior collapse",
                              low=0.0)
    iwae_k: int = option(1, "importance samples for the IWAE training bound (1: the ELBO)", low=1)
    seed: int = option(0, "seed for initialization, data order, binarization and sampling", low=0, high=MAX_SEED)
    threads: int | None = option(None, "torch CPU threads (default: torch's choice)", low=1)
    channels_last: bool = option(False, "keep batches and convolution weights channels-last (NHWC) in memory: "
                                 "faster convolutions for some models (docs/benchmarks.md)")
    precision: str = option("fp32", "number format of the training step's products: bf16 autocasts them to "
                            "bfloat16, faster only on CPUs with bf16 units (docs/benchmarks.md); "
                            "weights, optimizer, losses and evaluation stay fp32", choices=("fp32", "bf16"))
    max_nonfinite_steps: int = option(20, "stop after this many skipped non-finite steps", low=0)
    init_bias: bool = option(True, "start the decoder's output bias at the data's mean image (Bernoulli)")


@dataclass(frozen=True)
class MechanismConfig:
    """The noise and occlusion training mechanisms (see vaekit.corruption); off by default."""

    noise: str = option("none", "noise mechanism: the encoder sees noisy images, the loss reconstructs clean ones",
                        choices=("none", "gaussian", "salt-pepper", "jpeg"))
    noise_level: float = option(0.3, "gaussian: sigma (pixels in [0, 1]); salt-pepper: fraction of pixels", low=0.0)
    noise_random: bool = option(False, "gaussian: draw each image's sigma uniformly from [0, noise_level]")
    jpeg_quality: int = option(20, "jpeg: the JPEG quality the encoder's inputs are compressed at", low=1, high=95)
    occlusion: str = option("none", "occlusion mechanism: hide regions from the encoder",
                            choices=("none", "blocks", "centre", "strokes", "pixels"))
    occlusion_fraction: float = option(0.25, "about this fraction of each image is hidden", low=0.0, high=1.0)
    occlusion_lambda: float = option(1.0, "lambda: weight of the region-weighted reconstruction term R", low=0.0)
    occluded_weight: float = option(1.0, "weight of hidden pixels in R", low=0.0)
    visible_weight: float = option(0.0, "weight of visible pixels in R", low=0.0)

    @property
    def active(self) -> bool:
        return self.noise != "none" or self.occlusion != "none"


@dataclass(frozen=True)
class GANConfig:
    """The adversarial trainer of `--model vaegan` (see vaekit.engine.adversarial); the encoder and
    decoder use train.lr and its schedule, the discriminator its own rate."""

    gamma: float = option(1.0, "weight of the feature-wise reconstruction (through the discriminator) in the "
                          "decoder's loss, against fooling the discriminator (Larsen et al.'s gamma)",
                          flag="gan-gamma", low=0.0)
    adversarial_weight: float = option(5.0, "weight of the decoder's adversarial (non-saturating GAN) loss (5: "
                                       "best of 1 and 5 on MNIST, see docs/benchmarks.md)",
                                       flag="gan-adversarial-weight", low=0.0)
    pixel_weight: float = option(1.0, "weight of the pixel likelihood -log p(x|z) in the encoder's and decoder's "
                                 "losses (0: pure Larsen et al.; above 0 keeps the ELBO meaningful and early "
                                 "training stable)", flag="gan-pixel-weight", low=0.0)
    disc_lr: float = option(2e-4, "discriminator learning rate (Adam)", flag="disc-lr", low=0.0)
    adam_beta1: float = option(0.5, "Adam beta1 of all three optimizers (0.5 as in DCGAN)", flag="gan-beta1",
                               low=0.0, high=1.0)


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    mechanism: MechanismConfig = field(default_factory=MechanismConfig)
    gan: GANConfig = field(default_factory=GANConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        return apply_overrides(cls(), d)

    def replace(self, overrides: dict[str, Any]) -> "Config":
        """A copy with overrides; keys are `section.field`, bare field names or flag names."""
        return apply_overrides(self, overrides)


def binarizes(config: Config) -> bool:
    """Whether training re-binarizes batches: as asked, else as the model is scored (`scored_binarized`)."""
    if config.data.binarize is not None:
        return config.data.binarize
    return scored_binarized(config)


def scored_binarized(config: Config) -> bool:
    """Whether held-out images are binarized (once, with the protocol's seed) before the model is scored:
    exactly when the likelihood is Bernoulli and the model is not conditional (a restoration model
    learns the grey images it will restore). A Bernoulli likelihood is a density over binary images
    only, so a model trained on the grey pixels is scored on binarized ones too."""
    if config.model.arch in ("factorized", "hyperprior"):  # lossy codecs reconstruct the 8-bit images
        return False
    return config.model.likelihood == "bernoulli" and config.model.condition == "none"


SECTION_CLASSES = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "mechanism": MechanismConfig,
                   "gan": GANConfig}


def config_fields(sections: dict[str, type] = SECTION_CLASSES):
    """(section, dataclass field, flag name) for every field, in declaration order."""
    for section, cls in sections.items():
        for f in dataclasses.fields(cls):
            yield section, f, (f.metadata.get("flag") or f.name).replace("_", "-")


def _key_index(sections: dict[str, type]) -> dict[str, tuple[str, str]]:
    index = {}
    for section, f, flag in config_fields(sections):
        for key in (f.name, flag, flag.replace("-", "_"), f"{section}.{f.name}"):
            index[key] = (section, f.name)
    return index


def _flatten(d: dict, sections: dict[str, type]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and k in sections:
            out.update({f"{k}.{name}": value for name, value in v.items()})
        else:
            out[k] = v
    return out


def apply_overrides(config, overrides: dict[str, Any], sections: dict[str, type] = SECTION_CLASSES,
                    what: str = "config"):
    """A copy of `config` (a dataclass of `sections`) with overrides: nested sections,
    `section.field`, field or flag names; every value coerced to its type and range-checked."""
    index = _key_index(sections)
    values = {name: dataclasses.asdict(getattr(config, name)) for name in sections}
    for key, value in _flatten(overrides, sections).items():
        if key not in index:
            close = difflib.get_close_matches(key, index, n=1)
            raise ConfigError(f"unknown {what} key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        section, name = index[key]
        values[section][name] = value
    built = {}
    for name, cls in sections.items():
        hints = typing.get_type_hints(cls)
        fields = {k: coerce(v, hints[k], f"{name}.{k}") for k, v in values[name].items()}
        for f in dataclasses.fields(cls):
            check_range(f, fields[f.name], f"{name}.{f.name}")
        built[name] = cls(**fields)
    return type(config)(**built)


def coerce(value: Any, hint: Any, key: str) -> Any:
    """Convert a YAML/flag value to the field's type, or raise a ConfigError naming the key."""
    args = typing.get_args(hint)
    optional = type(None) in args
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null", "auto")):
        if optional or value is None and hint is type(None):
            return None
        raise ConfigError(f"{key} needs a value")
    base = next(a for a in args if a is not type(None)) if optional else hint
    origin = typing.get_origin(base)
    try:
        if origin is tuple:
            items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
            element = typing.get_args(base)[0]
            return tuple(finite(float(v), key) if element is float else int(v) for v in items)
        if base is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "yes", "no", "on", "off", "1", "0"):
                    raise ValueError
                return value.lower() in ("true", "yes", "on", "1")
            return bool(value)
        if base in (int, float) and isinstance(value, bool):  # YAML's true is no count or rate
            raise ValueError
        if base is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if base is float:
            return finite(float(value), key)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be {_type_name(base)}, got {value!r}") from None


def finite(value: float, key: str) -> float:
    """NaN passes every range check (each comparison is false) and inf trains a NaN model: refuse both."""
    if not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number, got {value}")
    return value


def _type_name(t: Any) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        t, "a comma-separated list of numbers" if float in typing.get_args(t) else "a comma-separated list of integers")


def check_range(f: dataclasses.Field, value: Any, key: str) -> None:
    meta = f.metadata
    if value is None:
        return
    if meta.get("choices") and value not in meta["choices"]:
        shown = ", ".join(str(c) for c in meta["choices"] if c is not None)
        raise ConfigError(f"{key} must be one of {shown}; got {value!r}")
    for number in value if isinstance(value, tuple) else (value,):  # a list's bounds hold for each element
        if isinstance(number, (int, float)) and not isinstance(number, bool):
            if meta.get("low") is not None and number < meta["low"]:
                raise ConfigError(f"{key} must be at least {meta['low']}, got {value}")
            if meta.get("high") is not None and number > meta["high"]:
                raise ConfigError(f"{key} must be at most {meta['high']}, got {value}")


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections (data, model, train)")
    return data
