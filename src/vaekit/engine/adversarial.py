"""The VAE-GAN training loop (Larsen et al. 2016, Algorithm 1): one forward pass, three losses, three
optimizers. With x~ the reconstruction of x and x_p a decoded prior sample (see models/vaegan.py):

    L_prior = KL(q(z|x) || p(z))                                       nats
    L_pixel = -log p(x | z)                                            the VAE's pixel likelihood, nats
    L_llike = 0.5 * ||Dis_l(x) - Dis_l(x~)||^2                         -log N(Dis_l(x) | Dis_l(x~), I) + const
    L_GAN   = BCE(D(x), real) + (BCE(D(x~), fake) + BCE(D(x_p), fake)) / 2
    L_gen   = (BCE(D(x~), real) + BCE(D(x_p), real)) / 2               the non-saturating generator loss

    encoder       <- beta * L_prior + L_llike + pixel_weight * L_pixel
    decoder       <- gamma * L_llike + pixel_weight * L_pixel + adversarial_weight * L_gen
    discriminator <- L_GAN

Each optimizer receives the gradient of its own loss only (`torch.autograd.grad` over its own
parameters), so L_llike never trains the discriminator and L_GAN never the encoder, as the paper
prescribes. The discriminator sees real images as they are (grey levels) even when the pixel
likelihood is Bernoulli and training re-binarizes the encoder's inputs and targets.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from vaekit.config import Config, GANConfig
from vaekit.engine import distributed
from vaekit.engine.batches import batches, epoch_generator
from vaekit.engine.trainer import Trainer, TrainData, add_step, kl_weight, lr_factor, set_lr, skip_step
from vaekit.errors import ConfigError
from vaekit.models.vaegan import VAEGAN

PARTS = ("encoder", "decoder", "discriminator")


@dataclass
class AdversarialTerms:
    encoder: torch.Tensor  # the three losses to minimize (scalars)
    decoder: torch.Tensor
    discriminator: torch.Tensor
    neg_elbo: torch.Tensor  # -ELBO under the pixel likelihood, batch mean, nats (detached, as are the rest)
    recon: torch.Tensor  # -log p(x|z), nats
    kl: torch.Tensor  # KL(q||p), nats
    feature_recon: torch.Tensor  # L_llike
    real_prob: torch.Tensor  # mean D(x): the discriminator's belief that real images are real
    fake_prob: torch.Tensor  # mean D(x~) and D(x_p)


def vaegan_losses(model: VAEGAN, x: torch.Tensor, x_real: torch.Tensor, gc: GANConfig, beta: float,
                  free_bits: float, generator: torch.Generator) -> AdversarialTerms:
    """The three losses on one batch: `x` (B, C, H, W) is what the encoder sees and the likelihood
    scores (binarized for Bernoulli training), `x_real` the same images as the discriminator sees them."""
    out = model(x, generator=generator)
    x_rec = model.likelihood.mean(out.params)  # (B, C, H, W) in [0, 1]
    x_gen = model.decode(model.prior.sample(len(x), generator, 1.0, x.device))  # (B, C, H, W)
    d_real = model.discriminator(x_real)  # features (B, F), logits (B,)
    d_fake = model.discriminator(torch.cat([x_rec, x_gen]))  # (2B, F), (2B,): the generator's losses see only these
    f_rec, _ = d_fake.features.chunk(2)
    l_real, (l_rec, l_gen) = d_real.logits, d_fake.logits.chunk(2)
    feature_recon = 0.5 * (f_rec - d_real.features.detach()).pow(2).sum(1).mean()
    recon = -out.log_px.mean()
    kl_dims = out.kl_per_dim.mean(0)  # (D,)
    kl = kl_dims.sum()
    kl_term = kl_dims.clamp(min=free_bits).sum() if free_bits > 0 else kl
    real, fake = torch.ones_like(l_real), torch.zeros_like(l_real)
    bce = F.binary_cross_entropy_with_logits
    disc = bce(l_real, real) + 0.5 * (bce(l_rec, fake) + bce(l_gen, fake))
    gen = 0.5 * (bce(l_rec, real) + bce(l_gen, real))
    encoder = beta * kl_term + feature_recon + gc.pixel_weight * recon
    decoder = gc.gamma * feature_recon + gc.pixel_weight * recon + gc.adversarial_weight * gen
    return AdversarialTerms(encoder, decoder, disc, (recon + kl).detach(), recon.detach(), kl.detach(),
                            feature_recon.detach(), torch.sigmoid(l_real.detach()).mean(),
                            torch.sigmoid(d_fake.logits.detach()).mean())


def parameter_groups(model: VAEGAN) -> dict[str, list[torch.nn.Parameter]]:
    """Encoder, discriminator, and everything else (decoder, and any prior or likelihood
    parameters) with the decoder, so that no parameter is left out of training."""
    groups: dict[str, list] = {part: [] for part in PARTS}
    for name, p in model.named_parameters():
        part = name.split(".", 1)[0]
        groups[part if part in ("encoder", "discriminator") else "decoder"].append(p)
    return groups


def adam(params: list, lr: float, tc, beta1: float) -> torch.optim.Optimizer:
    try:
        return torch.optim.AdamW(params, lr=lr, betas=(beta1, 0.999), weight_decay=tc.weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(params, lr=lr, betas=(beta1, 0.999), weight_decay=tc.weight_decay, foreach=True)


def check_supported(config: Config, world: distributed.World) -> None:
    m, tc = config.model, config.train
    problems = [(world.size > 1, "trains in one process (run it without torchrun)"),
                (tc.iwae_k > 1, "trains with the single-sample ELBO (set iwae_k=1)"),
                (config.mechanism.active, "has no noise or occlusion mechanism (set them to none)"),
                (m.condition != "none", "is unconditional (set condition=none)"),
                (tc.precision != "fp32", "trains in fp32: its feature loss is not kept in full precision under bf16 "
                                         "(set precision=fp32)")]
    for bad, what in problems:
        if bad:
            raise ConfigError(f"--model vaegan {what}")


class AdversarialTrainer(Trainer):
    """`Trainer` with Larsen et al.'s three optimizers: `optimizer` is the encoder's and
    `extra_optimizers` holds the decoder's and the discriminator's, so checkpoints and `--resume`
    keep all three. Validation, history, EMA and checkpoints are the ELBO trainer's."""

    @staticmethod
    def check_config(config: Config, world: distributed.World) -> None:
        Trainer.check_config(config, world)
        check_supported(config, world)

    def __init__(self, config: Config, data: TrainData, run_dir, world: distributed.World, progress: bool):
        super().__init__(config, data, run_dir, world, progress)
        gc = config.gan
        self.groups = parameter_groups(self.model)
        self.base_lr = {"encoder": self.tc.lr, "decoder": self.tc.lr, "discriminator": gc.disc_lr}
        opts = {part: adam(self.groups[part], self.base_lr[part], self.tc, gc.adam_beta1) for part in PARTS}
        self.optimizer = opts.pop("encoder")
        self.extra_optimizers = opts

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"encoder": self.optimizer, **self.extra_optimizers}

    def run_epoch(self, epoch: int) -> None:
        tc, state = self.tc, self.state
        g = epoch_generator(tc.seed, epoch)
        started = time.perf_counter()
        sums = torch.zeros(4)  # -ELBO, recon, KL (image-weighted), images
        gan_sums = torch.zeros(4)  # L_llike, L_GAN, D(real), D(fake) (image-weighted)
        bar = tqdm(batches(self.data.train, tc.batch_size, g, binarize=False), total=self.steps_per_epoch,
                   desc=f"epoch {epoch + 1}/{tc.epochs}", unit="batch", disable=not self.progress, leave=False)
        self.model.train()
        for i, x_real in enumerate(bar):
            x_real = self.in_layout(x_real)
            x = torch.bernoulli(x_real, generator=g) if self.data.binarize else x_real
            factor = lr_factor(state["step"], self.steps_per_epoch * tc.epochs, tc)
            for part, opt in self.optimizers().items():
                set_lr(opt, self.base_lr[part] * factor)
            beta = kl_weight(state["step"], self.steps_per_epoch, tc)
            terms = vaegan_losses(self.model, x, x_real, self.config.gan, beta, tc.free_bits, g)
            if not self.apply(terms, epoch):
                continue
            self.update_ema()
            state["step"] += 1
            add_step(sums, terms, len(x))
            gan_sums += torch.stack([terms.feature_recon, terms.discriminator.detach(), terms.real_prob,
                                     terms.fake_prob]) * len(x)
            if i % 50 == 0:
                bar.set_postfix(loss=f"{terms.neg_elbo.item():.2f}", d_real=f"{terms.real_prob.item():.2f}")
        means = (gan_sums / sums[3].clamp(min=1)).tolist()
        self.epoch_log = dict(zip(("train_feature_recon", "train_disc_loss", "train_disc_real_prob",
                                   "train_disc_fake_prob"), means))
        self.end_epoch(epoch, sums, time.perf_counter() - started)

    def apply(self, terms: AdversarialTerms, epoch: int) -> bool:
        """Give each optimizer the gradient of its own loss and step all three; False (and counted)
        for a non-finite loss or gradient or an outlier gradient norm, with no weight changed."""
        tc = self.tc
        losses = {"encoder": terms.encoder, "decoder": terms.decoder, "discriminator": terms.discriminator}
        if not all(math.isfinite(loss.item()) for loss in losses.values()):
            skip_step(self.state, tc, epoch, self.run_dir)
            return False
        norms = []
        for i, part in enumerate(PARTS):
            params = self.groups[part]
            grads = torch.autograd.grad(losses[part], params, retain_graph=i < len(PARTS) - 1, allow_unused=True)
            for p, grad in zip(params, grads):
                p.grad = torch.zeros_like(p) if grad is None else grad
            norms.append(torch.nn.utils.clip_grad_norm_(params, tc.grad_clip or math.inf).item())
        if not all(math.isfinite(norm) for norm in norms):
            skip_step(self.state, tc, epoch, self.run_dir)
            return False
        if tc.skip_grad_norm and max(norms) > tc.skip_grad_norm:
            self.state["skipped_updates"] += 1
            return False
        for opt in self.optimizers().values():
            opt.step()
        return True
