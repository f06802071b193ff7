"""The conditional VAE (Sohn, Lee & Yan 2015) that super-resolution, repair, denoising and inpainting use.

    y = condition.degrade(x)          a degraded copy of the clean image (made on the fly in training)
    u = condition.full_res(y)         (B, Cu, H, W): y at the clean image's resolution
    encoder([x, u]) -> q(z | x, y)    (B, D)
    p(z | y) = N(0, I), or prior_net(u) with `--condition-prior learned`
    decoder(z, u)   -> params         (B, P*C, H, W); for low-res, JPEG and occluded y, shifted toward u's
                                      image so that the decoder learns the residual (what y lost)
    p(x | z, y) = likelihood(params)

Given only y, `restore` decodes the prior mean (deterministic) or prior samples (one
plausible clean image each). It is the same `ImageVAE` as the others for training and
evaluation: `forward(x)` makes y from x, so the ELBO it returns bounds log p(x | y).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vaekit.errors import ConfigError
from vaekit.models.conditions import Condition, build_condition
from vaekit.models.decoders import ConvDecoder, MLPDecoder
from vaekit.models.distributions import DiagonalGaussian
from vaekit.models.encoders import ConvEncoder, MLPEncoder
from vaekit.models.likelihoods import Bernoulli, DiscretizedLogisticMixture, Gaussian, Likelihood
from vaekit.models.priors import StandardNormal
from vaekit.models.vae import ImageVAE, VAEOutput
from vaekit.nn.blocks import Bottleneck


class ConditionedMLPDecoder(nn.Module):
    """[z, flattened u] -> an MLP decoder: Sohn et al.'s MNIST CVAE."""

    def __init__(self, image_shape, cond_numel: int, hidden_dims, latent_dim: int, params_per_channel: int):
        super().__init__()
        self.net = MLPDecoder(image_shape, hidden_dims, latent_dim + cond_numel, params_per_channel)

    def forward(self, z: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, u.flatten(1)], dim=1))


class ConditionedConvDecoder(nn.Module):
    """A trunk that sees u directly and z through `ConvDecoder`'s upsampling path, at 1/stride of the
    image's resolution (u folded into channels by pixel unshuffle, the output unfolded by pixel
    shuffle, as ESPCN and FFDNet do: stride^2 fewer positions for the same receptive field):

        h = conv3x3(unshuffle(u)) + ConvDecoder(z)   (B, width, H/s, W/s)
        h = Bottleneck cells(h)                      residual, VDVAE-style
        params = shuffle(conv3x3(gelu(h)))           (B, P*C, H, W)
    Local detail comes from u, global information (what the degraded image lost) from z."""

    # IWAE pass: the best of 100-20,000 image-samples for the photo x4 model in two runs, 1.33-1.35x faster
    # than 500 (benchmarks/iwae_chunk.py; 25 and 50 were no faster in a probe): larger passes spill the
    # trunk's 64-channel maps out of the caches
    samples_per_pass = 100

    def __init__(self, image_shape, cond_channels: int, widths, latent_dim: int, fc_dim: int,
                 params_per_channel: int, width: int, blocks: int, stride: int = 1,
                 cell_width: int | None = None):
        super().__init__()
        c, h, w = image_shape
        self.z_map = ConvDecoder((width, h // stride, w // stride), widths, latent_dim, fc_dim, 1)
        self.unshuffle, self.shuffle = nn.PixelUnshuffle(stride), nn.PixelShuffle(stride)
        self.stem = nn.Conv2d(cond_channels * stride**2, width, 3, padding=1)
        scale = 1 / math.sqrt(max(1, blocks))
        self.cells = nn.Sequential(*[Bottleneck(width, cell_width or max(1, width // 4), width, last_scale=scale)
                                     for _ in range(blocks)])
        self.out = nn.Conv2d(width, params_per_channel * c * stride**2, 3, padding=1)

    def forward(self, z: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        h = self.stem(self.unshuffle(u)) + self.z_map(z)
        return self.shuffle(self.out(F.gelu(self.cells(h))))


def shift_toward(likelihood: Likelihood, params: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Likelihood parameters (B, P*C, H, W) moved so that zero decoder output means `image` (B, C, H, W):
    the decoder then only learns what the degradation lost (the residual learning of VDSR/DnCNN)."""
    if isinstance(likelihood, Gaussian):  # means are the first C channels
        c = image.shape[1]
        return torch.cat([params[:, :c] + image, params[:, c:]], dim=1)
    if isinstance(likelihood, Bernoulli):
        p = image.clamp(0.01, 0.99)
        return params + torch.log(p) - torch.log1p(-p)
    if isinstance(likelihood, DiscretizedLogisticMixture):  # (B, 3, K, C, H, W): logits, means, log-scales
        parts = params.unflatten(1, (3, likelihood.components, -1))
        shift = torch.stack([torch.zeros_like(image), 2 * image - 1, torch.zeros_like(image)], 1).unsqueeze(2)
        return (parts + shift).flatten(1, 3)
    raise ConfigError(f"the conditional VAE does not support the likelihood {type(likelihood).__name__}")


class ConditionalVAE(ImageVAE):
    """q(z | x, y), p(x | z, y), p(z | y); y made from x by `condition` (see the module docstring).
    Without `prior_net`, p(z | y) = N(0, I). With it, p(z | y) = prior_net(u): the prior learns where
    the posteriors of images like y lie, so the draws that restoring makes given y are the kind of
    z the decoder was trained on (N(0, I) draws need not be, and then decode to poorer images)."""

    def __init__(self, condition: Condition, encoder: nn.Module, decoder: nn.Module, prior: StandardNormal,
                 likelihood: Likelihood, image_shape: tuple[int, int, int], prior_net: nn.Module | None = None):
        super().__init__(image_shape, likelihood)
        self.condition = condition
        self.encoder, self.decoder, self.prior = encoder, decoder, prior
        self.prior_net = prior_net
        self.samples_per_pass = getattr(decoder, "samples_per_pass", self.samples_per_pass)  # as in VAE

    @property
    def latent_dim(self) -> int:
        return self.prior.latent_dim

    def init_output_bias(self, mean_image: torch.Tensor) -> None:
        """Nothing to do: `shift_toward` already starts the decoder at the degraded image."""

    def condition_of(self, x: torch.Tensor, y: torch.Tensor | None, generator=None) -> torch.Tensor:
        if y is None:
            return self.condition.degrade(x, generator)
        self.condition.check(y, self.condition.shape)
        return y

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> DiagonalGaussian:
        """q(z | x, y); y defaults to the condition made from x."""
        self.check_images(x)
        u = self.condition.full_res(self.condition_of(x, y, generator))
        return self.encoder(torch.cat([x, u], dim=1))

    def conditional_prior(self, y: torch.Tensor) -> DiagonalGaussian | None:
        """p(z | y) from the prior network, or None for N(0, I)."""
        return None if self.prior_net is None else self.prior_net(self.condition.full_res(y))

    def params(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Raw likelihood parameters of p(x | z, y), (N, P*C, H, W)."""
        u = self.condition.full_res(y)
        params = self.decoder(z, u)
        if not self.condition.residual:
            return params
        return shift_toward(self.likelihood, params, u[:, :self.condition.image_channels])

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The expected image given latents (N, D) and conditions y (N, *condition.shape)."""
        if y is None:
            raise ConfigError(f"this conditional model ({self.condition.kind}) decodes given a degraded image y; "
                              "use the restoration tasks (vaekit upscale, repair, denoise, inpaint)")
        return self.likelihood.mean(self.params(z, y))

    def forward(self, x, target=None, generator=None, pixel_weights=None, y=None) -> VAEOutput:
        """One-sample ELBO terms of log p(target | y); y defaults to the condition made from the clean
        target, so the trainer needs nothing but clean images."""
        clean = x if target is None else target
        y = self.condition_of(clean, y, generator)
        posterior = self.encode(x, y)
        z = posterior.sample(generator)
        params = self.params(z, y)
        log_px = self.likelihood.log_prob(params, clean, pixel_weights)
        prior = self.conditional_prior(y)
        kl = posterior.kl_per_dim() if prior is None else posterior.kl_per_dim_to(prior)
        return VAEOutput(posterior, z, params, log_px, kl)

    def inference_context(self, x: torch.Tensor):
        y = self.condition.degrade(x)
        return self.encode(x, y), y

    def log_weights(self, x, k, generator=None, target=None, context=None) -> torch.Tensor:
        """log p(x, z_i | y) - log q(z_i | x, y) for k posterior samples: (k, B)."""
        clean = x if target is None else target
        if context is None:
            y = self.condition_of(clean, None, generator)
            context = (self.encode(x, y), y)
        posterior, y = context
        z = posterior.sample(generator, k=k)  # (k, B, D)
        params = self.params(z.flatten(0, 1), y.repeat(k, 1, 1, 1)).unflatten(0, (k, -1))
        prior = self.conditional_prior(y)
        log_pz = self.prior.log_prob(z) if prior is None else prior.log_prob(z)
        return self.likelihood.log_prob(params, clean) + log_pz - posterior.log_prob(z)

    @torch.no_grad()
    def restore(self, y: torch.Tensor, temperature: float = 0.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Clean images given degraded ones: z at the prior's mean (deterministic) or, with
        temperature > 0, drawn from the prior with its spread scaled by temperature (one plausible
        image each). (B, C, H, W)."""
        self.condition.check(y, self.condition.shape)
        device = next(self.parameters()).device
        z = self.prior.sample(len(y), generator, temperature, device) if temperature > 0 \
            else torch.zeros(len(y), self.latent_dim, device=device)
        prior = self.conditional_prior(y)
        if prior is not None:  # N(0, I) draws moved to the learned prior's mean and spread
            z = prior.mean + prior.std * z
        return self.decode(z, y)

    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        raise ConfigError(f"a conditional model ({self.condition.kind}) draws images given a degraded one, not "
                          "from nothing; use its restoration task (vaekit upscale, repair, denoise or inpaint)")

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        y = self.condition.degrade(x, torch.Generator().manual_seed(0))
        return self.decode(self.encode(x, y).mean, y)


def build_conditional(cfg, image_shape, likelihood: Likelihood) -> ConditionalVAE:
    """The conditional version of the mlp or conv architecture a ModelConfig names."""
    condition = build_condition(cfg, image_shape)
    c, h, w = image_shape
    both = (c + condition.channels, h, w)  # what the encoder sees: [x, u]
    if cfg.arch == "mlp":
        hidden = cfg.hidden_dims or (400,)
        encoder = MLPEncoder(both, hidden, cfg.latent_dim)
        decoder = ConditionedMLPDecoder(image_shape, condition.channels * h * w, hidden[::-1], cfg.latent_dim,
                                        likelihood.params_per_channel)
    elif cfg.arch == "conv":
        widths, s = cfg.hidden_dims or (32, 64), cfg.cvae_stride
        if h % s or w % s:
            raise ConfigError(f"model.cvae_stride {s} must divide the image size {h}x{w}")
        encoder = ConvEncoder((both[0] * s * s, h // s, w // s), widths, cfg.latent_dim, cfg.fc_dim)
        if s > 1:  # (a plain ConvEncoder at stride 1 keeps the parameter names of earlier checkpoints)
            encoder = nn.Sequential(nn.PixelUnshuffle(s), encoder)
        decoder = ConditionedConvDecoder(image_shape, condition.channels, widths, cfg.latent_dim, cfg.fc_dim,
                                         likelihood.params_per_channel, cfg.cvae_width, cfg.cvae_blocks, s,
                                         cfg.cvae_cell_width)
    else:
        raise ConfigError(f"model.condition works with the mlp and conv architectures, not {cfg.arch}")
    if cfg.condition_residual != "auto":
        condition.residual = cfg.condition_residual == "on"
    prior_net = build_prior_net(cfg, (condition.channels, h, w)) if cfg.condition_prior == "learned" else None
    return ConditionalVAE(condition, encoder, decoder, StandardNormal(cfg.latent_dim), likelihood, image_shape,
                          prior_net)


def build_prior_net(cfg, u_shape: tuple[int, int, int]) -> nn.Module:
    """The network of a learned p(z | y): the encoder's architecture, seeing u alone."""
    c, h, w = u_shape
    if cfg.arch == "mlp":
        return MLPEncoder(u_shape, cfg.hidden_dims or (400,), cfg.latent_dim)
    s = cfg.cvae_stride
    net = ConvEncoder((c * s * s, h // s, w // s), cfg.hidden_dims or (32, 64), cfg.latent_dim, cfg.fc_dim)
    return nn.Sequential(nn.PixelUnshuffle(s), net) if s > 1 else net
