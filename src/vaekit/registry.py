"""The one name -> builder map for architectures and likelihoods; the CLI and configs read it."""
from __future__ import annotations

from typing import Callable

from vaekit.config import ModelConfig
from vaekit.errors import ConfigError
from vaekit.models.conditional import build_conditional
from vaekit.models.decoders import ConvDecoder, MLPDecoder
from vaekit.models.encoders import ConvEncoder, MLPEncoder
from vaekit.models.likelihoods import Bernoulli, DiscretizedLogisticMixture, Gaussian, Likelihood
from vaekit.models.priors import StandardNormal
from vaekit.models.hierarchical import HierarchicalVAE
from vaekit.models.transform import TransformCodec
from vaekit.models.vae import VAE, ImageVAE
from vaekit.models.vaegan import VAEGAN, Discriminator, MLPDiscriminator

LIKELIHOODS: dict[str, Callable[[ModelConfig], Likelihood]] = {
    "bernoulli": lambda cfg: Bernoulli(),
    "gaussian": lambda cfg: Gaussian(std=cfg.gaussian_std),
    "gaussian-learned": lambda cfg: Gaussian(std=None),
    "logistic-mixture": lambda cfg: DiscretizedLogisticMixture(cfg.mixture_components),
}


def _mlp(cfg: ModelConfig, shape, likelihood: Likelihood) -> VAE:
    hidden = cfg.hidden_dims or (400,)
    return VAE(MLPEncoder(shape, hidden, cfg.latent_dim),
               MLPDecoder(shape, hidden[::-1], cfg.latent_dim, likelihood.params_per_channel),
               StandardNormal(cfg.latent_dim), likelihood, shape)


def _conv(cfg: ModelConfig, shape, likelihood: Likelihood) -> VAE:
    widths = cfg.hidden_dims or (32, 64)
    return VAE(ConvEncoder(shape, widths, cfg.latent_dim, cfg.fc_dim),
               ConvDecoder(shape, widths, cfg.latent_dim, cfg.fc_dim, likelihood.params_per_channel),
               StandardNormal(cfg.latent_dim), likelihood, shape)


def _hvae(cfg: ModelConfig, shape, likelihood: Likelihood) -> HierarchicalVAE:
    return HierarchicalVAE(shape, likelihood, width=cfg.hvae_width, middle=cfg.hvae_middle, zdim=cfg.latent_dim,
                           groups=cfg.hvae_groups, encoder_blocks=cfg.hvae_encoder_blocks,
                           stride=cfg.hvae_stride, activation=cfg.hvae_activation)


def _vaegan(cfg: ModelConfig, shape, likelihood: Likelihood) -> VAEGAN:
    """The `vaegan_base` VAE with a discriminator added; trained by `vaekit.engine.adversarial`."""
    base = ARCHITECTURES[cfg.vaegan_base](cfg, shape, likelihood)
    discriminator = (MLPDiscriminator if cfg.disc_arch == "mlp" else Discriminator)(shape, cfg.disc_widths)
    return VAEGAN(base.encoder, base.decoder, base.prior, likelihood, shape, discriminator)


def _codec(cfg: ModelConfig, shape, likelihood: Likelihood) -> TransformCodec:
    """A lossy transform codec (the likelihood is unused: its distortion is the MSE of the loss)."""
    if not cfg.lmbda or min(cfg.lmbda) <= 0:
        raise ConfigError(f"model.lmbda must be positive numbers, one per quality level, got {cfg.lmbda}")
    return TransformCodec(shape, cfg.arch, cfg.codec_channels, cfg.codec_latent, cfg.lmbda, cfg.codec_shortcut)


ARCHITECTURES: dict[str, Callable[..., ImageVAE]] = {"mlp": _mlp, "conv": _conv, "hvae": _hvae, "vaegan": _vaegan,
                                                     "factorized": _codec, "hyperprior": _codec}
CODEC_ARCHITECTURES = frozenset({"factorized", "hyperprior"})  # rate-distortion loss (vaekit.losses), lossy files
ADVERSARIAL_ARCHITECTURES = frozenset({"vaegan"})  # trained by vaekit.engine.adversarial, not the ELBO loop


def build_model(cfg: ModelConfig) -> ImageVAE:
    """The model a config describes; `cfg.image_shape` must be set (training sets it from the data)."""
    if cfg.image_shape is None or len(cfg.image_shape) != 3:
        raise ConfigError("model.image_shape (channels, height, width) must be set before building the model")
    for table, name, what in ((ARCHITECTURES, cfg.arch, "architecture"), (LIKELIHOODS, cfg.likelihood, "likelihood")):
        if name not in table:
            raise ConfigError(f"unknown {what} {name!r}; choose one of {', '.join(table)}")
    likelihood = LIKELIHOODS[cfg.likelihood](cfg)
    if cfg.condition != "none":  # the conditional version of the architecture (super-resolution, repair, denoising)
        return build_conditional(cfg, tuple(cfg.image_shape), likelihood)
    return ARCHITECTURES[cfg.arch](cfg, tuple(cfg.image_shape), likelihood)
