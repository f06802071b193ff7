"""The training loop: AdamW, warm-up + schedule, KL warm-up, clipping, EMA, a non-finite guard,
per-epoch validation, atomic checkpoints, and exact resume."""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from vaekit.config import Config, binarizes
from vaekit.corruption import degrade
from vaekit.data import ImageDataset, load_dataset
from vaekit.engine import checkpoint, distributed, precision
from vaekit.engine.batches import batches, epoch_generator, split_validation, to_unit
from vaekit.engine.files import write_text
from vaekit.errors import CheckpointError, ConfigError, TrainingError
from vaekit.losses import LossTerms, elbo_loss, iwae_loss, rate_distortion_loss
from vaekit.models.transform import TransformCodec
from vaekit.models.vae import ImageVAE
from vaekit.registry import ADVERSARIAL_ARCHITECTURES, CODEC_ARCHITECTURES, build_model

# updates skipped for --skip-grad-norm in a row that mean the threshold, not an outlier, is the problem
SKIPS_IN_A_ROW = 100


@dataclass
class TrainData:
    train: torch.Tensor  # uint8 (N, C, H, W)
    val: torch.Tensor  # uint8, a fixed held-out part of the training split (may be empty)
    binarize: bool


def prepare_data(config: Config, dataset: ImageDataset | None = None, progress: bool = True) -> TrainData:
    d = config.data
    if dataset is None:
        dataset = load_dataset(d.data, "train", data_dir=d.data_dir, image_size=d.image_size,
                               channels=d.channels, mirror=d.mirror, progress=progress)
    train, val = split_validation(dataset.images, d.val_fraction)
    if d.limit is not None:
        train = train[: d.limit]
    return TrainData(train.contiguous(), val.contiguous(), binarizes(config))


def resolve_config(config: Config, data: TrainData) -> Config:
    """The config as it will be saved: the image shape comes from the data."""
    return config.replace({"model.image_shape": tuple(data.train.shape[1:])})


def make_optimizer(model: torch.nn.Module, tc) -> torch.optim.Optimizer:
    """AdamW with the fused kernel where this torch has it (CPU since 2.4): one pass over the
    weights instead of a dozen, about 15% of a small model's step on CPU."""
    try:
        return torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay, foreach=True)


def ema_update(decay: float, every: int = 1):
    """EMA with a warm-up: the decay grows as min(decay, (1 + t) / (10 + t)) over steps t, so the
    average forgets the first, near-random weights (a fixed 0.999 still gives them 10% weight after
    2,300 steps, which hurts short runs). Folded in every `every` steps, the decay is raised to that
    power, so the average spans as many steps as when it is updated after each one."""

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged) -> None:
        t = float(num_averaged) * every
        torch._foreach_lerp_(averaged, current, 1 - min(decay, (1 + t) / (10 + t)) ** every)

    return update


def lr_factor(step: int, total: int, cfg) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "cosine":
        progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return 1.0


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def kl_weight(step: int, steps_per_epoch: int, cfg) -> float:
    if cfg.kl_warmup_epochs <= 0:
        return cfg.beta
    return cfg.beta * min(1.0, (step + 1) / (cfg.kl_warmup_epochs * steps_per_epoch))


ONE = torch.ones(())


def add_step(sums: torch.Tensor, terms: LossTerms, images: int) -> None:
    """Add a step's batch means, weighted by its images, and the images to an epoch's sums (-ELBO,
    recon, KL, images): two tensor operations, a few microseconds of every step."""
    sums.add_(torch.stack([terms.neg_elbo, terms.recon, terms.kl, ONE]), alpha=images)


def compute_loss(model: ImageVAE, x: torch.Tensor, config: Config, beta: float,
                 generator: torch.Generator) -> LossTerms:
    """The training objective on a clean batch x; with a mechanism on, the encoder sees a degraded x."""
    tc = config.train
    if config.model.arch in CODEC_ARCHITECTURES:
        return codec_loss(model, x, generator)
    x_in, weights = degrade(x, config.mechanism, generator) if config.mechanism.active else (x, None)
    if tc.iwae_k > 1:
        return iwae_loss(model, x_in, tc.iwae_k, generator, target=x)
    return elbo_loss(model(x_in, target=x, generator=generator, pixel_weights=weights), beta=beta,
                     free_bits=tc.free_bits)


def codec_loss(model: torch.nn.Module, x: torch.Tensor, generator: torch.Generator,
               quality: torch.Tensor | None = None) -> LossTerms:
    """A transform codec's rate + lambda * distortion, each image at a random quality level (all
    levels train at once; see vaekit.models.transform) unless `quality` (B,) is given."""
    lambdas = torch.tensor(getattr(model, "module", model).lambdas)
    if quality is None:
        quality = torch.randint(len(lambdas), (len(x),), generator=generator)
    return rate_distortion_loss(model(x, quality, generator), x, lambdas[quality])


@torch.no_grad()
def validate(model: torch.nn.Module, val: torch.Tensor, binarize: bool, seed: int) -> float | None:
    """Mean single-sample negative ELBO (nats) on the fixed validation images (a codec: its
    rate-distortion loss with rounded latents, the images taking the quality levels in turn)."""
    if len(val) == 0:
        return None
    g = torch.Generator().manual_seed(seed)
    model.eval()
    total = 0.0
    for x in batches(val, 1000, g, binarize):
        if isinstance(model, TransformCodec):
            total += codec_loss(model, x, g, torch.arange(len(x)) % model.qualities).neg_elbo.item() * len(x)
            continue
        out = model(x, generator=g)
        total += -(out.log_px - out.kl).sum().item()
    model.train()
    return total / len(val)


def fit(config: Config, run_dir: str | Path, *, resume: bool = False, progress: bool = True,
        data: TrainData | None = None) -> checkpoint.Run:
    """Train the model `config` describes and keep it in `run_dir`; returns the loaded run.
    Under torchrun, every process calls this and trains its share of each batch."""
    run_dir = Path(run_dir)
    has_run = checkpoint.checkpoint_dir(run_dir).joinpath("model.safetensors").is_file()
    if resume and not has_run:
        raise CheckpointError(f"nothing to resume: {run_dir} holds no checkpoint")
    if not resume and has_run:
        raise CheckpointError(f"{run_dir} already holds a trained run; pass --resume to continue it "
                              "or choose another --out")
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    world = distributed.setup(config.train.batch_size, config.train.iwae_k)
    loop = trainer_class(config)
    loop.check_config(config, world)
    data = data or prepare_data(config, progress=progress and world.is_main)
    config = resolve_config(config, data)
    if resume:
        check_same_run(checkpoint.read_config(run_dir), config, run_dir)
    trainer = loop(config, data, run_dir, world, progress=progress and world.is_main)
    if resume:
        trainer.state = checkpoint.load_training_state(run_dir, trainer.model, trainer.optimizer, trainer.ema,
                                                       trainer.extra_optimizers)
    for epoch in range(trainer.state["epoch"], config.train.epochs):
        trainer.run_epoch(epoch)
    world.barrier()
    distributed.teardown(world)
    return checkpoint.load(run_dir)


def trainer_class(config: Config) -> type["Trainer"]:
    """The loop a model trains with: the adversarial one (three optimizers) for a VAE-GAN."""
    if config.model.arch in ADVERSARIAL_ARCHITECTURES:
        from vaekit.engine.adversarial import AdversarialTrainer  # it builds on this module

        return AdversarialTrainer
    return Trainer


class Trainer:
    """The state of one training run and the two things done with it: an epoch of steps, and the
    bookkeeping after each epoch (validation, history, checkpoint)."""

    def __init__(self, config: Config, data: TrainData, run_dir: Path, world: distributed.World, progress: bool):
        self.config, self.tc, self.data, self.run_dir, self.world = config, config.train, data, run_dir, world
        self.progress = progress
        torch.manual_seed(self.tc.seed)
        self.model = build_model(config.model)
        if self.tc.init_bias:
            self.model.init_output_bias(to_unit(data.train[:10000]).mean(0))
        if self.tc.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.forward_model = DistributedDataParallel(self.model) if world.size > 1 else self.model
        self.device = next(self.model.parameters()).device
        if world.is_main:
            precision.warn_if_emulated(self.tc.precision, self.device)
        self.optimizer = make_optimizer(self.model, self.tc)
        self.extra_optimizers: dict[str, torch.optim.Optimizer] = {}  # saved and resumed beside `optimizer`
        self.skipped_in_a_row = 0
        self.epoch_log: dict = {}  # extra per-epoch numbers a subclass adds to the history
        self.ema = AveragedModel(self.model, multi_avg_fn=ema_update(self.tc.ema_decay, self.tc.ema_every),
                                 use_buffers=True) if self.tc.ema_decay else None
        self.state = {"epoch": 0, "step": 0, "nonfinite_steps": 0, "skipped_updates": 0, "history": []}
        self.steps_per_epoch = math.ceil(len(data.train) / self.tc.batch_size)

    @staticmethod
    def check_config(config: Config, world: distributed.World) -> None:
        """Refuse settings this loop cannot train, before any data is loaded."""
        precision.check_supported(config)
        check_objective(config)

    def run_epoch(self, epoch: int) -> None:
        tc = self.tc
        g = epoch_generator(tc.seed, epoch)
        started = time.perf_counter()
        sums = torch.zeros(4)  # -ELBO, recon, KL (image-weighted), images
        bar = tqdm(batches(self.data.train, tc.batch_size, g, self.data.binarize), total=self.steps_per_epoch,
                   desc=f"epoch {epoch + 1}/{tc.epochs}", unit="batch", disable=not self.progress, leave=False)
        self.model.train()
        for i, x in enumerate(bar):
            x = self.in_layout(self.world.shard(x))
            terms = self.train_step(x, epoch, g)
            if terms is None:
                continue
            add_step(sums, terms, len(x))
            if i % 50 == 0:
                bar.set_postfix(loss=f"{terms.neg_elbo.item():.2f}")
        self.end_epoch(epoch, self.world.sum(sums), time.perf_counter() - started)

    def train_step(self, x: torch.Tensor, epoch: int, g: torch.Generator) -> LossTerms | None:
        """One update from this process's batch x; None when it was skipped (see `update_is_sound`)."""
        tc, state = self.tc, self.state
        set_lr(self.optimizer, tc.lr * lr_factor(state["step"], self.steps_per_epoch * tc.epochs, tc))
        beta = kl_weight(state["step"], self.steps_per_epoch, tc)
        with precision.autocast(tc.precision, self.device):
            terms = compute_loss(self.forward_model, x, self.config, beta, g)
        self.optimizer.zero_grad(set_to_none=True)
        terms.loss.backward()
        if not self.update_is_sound(terms.loss, epoch):
            return None
        self.optimizer.step()
        self.update_ema()
        state["step"] += 1
        return terms

    def update_ema(self) -> None:
        """Fold the weights just updated into the EMA, on every `ema_every`-th step from the first."""
        if self.ema is not None and self.state["step"] % self.tc.ema_every == 0:
            self.ema.update_parameters(self.model)

    def in_layout(self, x: torch.Tensor) -> torch.Tensor:
        """A batch in the memory layout the model's weights have (--channels-last)."""
        return x.contiguous(memory_format=torch.channels_last) if self.tc.channels_last else x

    def update_is_sound(self, loss: torch.Tensor, epoch: int) -> bool:
        """False (and counted) for a non-finite loss or gradient, or an outlier gradient norm."""
        tc = self.tc
        bad = torch.tensor(0.0 if math.isfinite(loss.item()) else 1.0)
        grad_norm = None
        if tc.grad_clip or tc.skip_grad_norm or self.world.size > 1:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip or math.inf).item()
            bad += 0.0 if math.isfinite(grad_norm) else 1.0
        if self.world.sum(bad).item() > 0:  # every process must take the same decision
            skip_step(self.state, tc, epoch, self.run_dir)
            return False
        if tc.skip_grad_norm and grad_norm > tc.skip_grad_norm:
            self.state["skipped_updates"] += 1
            self.skipped_in_a_row += 1
            if self.skipped_in_a_row >= SKIPS_IN_A_ROW:  # the weights no longer change: the run is stuck
                raise TrainingError(
                    f"training stopped in epoch {epoch + 1}: {self.skipped_in_a_row} updates in a row had a "
                    f"gradient norm above --skip-grad-norm {tc.skip_grad_norm:g} (the last {grad_norm:.4g}); the "
                    f"norm grows with the loss's scale (nats per image), so raise it for this model and data")
            return False
        self.skipped_in_a_row = 0
        return True

    def end_epoch(self, epoch: int, sums: torch.Tensor, seconds: float) -> None:
        state = self.state
        neg_elbo, recon, kl = (sums[:3] / sums[3].clamp(min=1)).tolist()
        if self.world.is_main:
            eval_model = self.ema.module if self.ema is not None else self.model
            state["history"].append({
                "epoch": epoch + 1, "step": state["step"], "train_neg_elbo_nats": neg_elbo,
                "train_recon_nats": recon, "train_kl_nats": kl,
                "val_neg_elbo_nats": validate(eval_model, self.data.val, self.data.binarize, self.tc.seed),
                "seconds": seconds, "images_per_second": sums[3].item() / seconds,
                "lr": self.optimizer.param_groups[0]["lr"], "nonfinite_steps": state["nonfinite_steps"],
                "skipped_updates": state["skipped_updates"], "processes": self.world.size, **self.epoch_log})
        state["epoch"] = epoch + 1
        if self.world.is_main:
            checkpoint.save_checkpoint(self.run_dir, self.config, self.model, state, self.optimizer, self.ema,
                                       self.extra_optimizers)
            write_text(self.run_dir / "metrics.jsonl", "".join(json_line(h) for h in state["history"]))
            self.print_epoch(epoch)
        self.world.barrier()

    def print_epoch(self, epoch: int) -> None:
        epochs = self.tc.epochs
        if self.progress and ((epoch + 1) % max(1, epochs // 20) == 0 or epoch + 1 == epochs):
            h = self.state["history"][-1]
            val = f", val -ELBO {h['val_neg_elbo_nats']:.2f}" if h["val_neg_elbo_nats"] is not None else ""
            tqdm.write(f"epoch {epoch + 1}/{epochs}: train -ELBO {h['train_neg_elbo_nats']:.2f} nats{val} "
                       f"({h['images_per_second']:.0f} images/s)")


def check_objective(config: Config) -> None:
    """Refuse settings the training objective would ignore without a word: a lossy codec trains
    rate + lambda * distortion, and the IWAE bound has no KL term to weigh and no pixel weights."""
    tc, mechanism = config.train, config.mechanism
    kl_settings = [("beta", tc.beta != 1), ("free_bits", tc.free_bits > 0),
                   ("kl_warmup_epochs", tc.kl_warmup_epochs > 0)]
    if config.model.arch in CODEC_ARCHITECTURES:
        objective, unused = f"--model {config.model.arch}", [*kl_settings, ("iwae_k", tc.iwae_k > 1),
                                                             ("noise or occlusion", mechanism.active)]
    elif tc.iwae_k > 1:
        objective, unused = "IWAE training (iwae_k > 1)", [*kl_settings, ("occlusion", mechanism.occlusion != "none")]
    else:
        return
    names = [name for name, set_by_user in unused if set_by_user]
    if names:
        raise ConfigError(f"{objective} does not use {', '.join(names)}; leave {'it' if len(names) == 1 else 'them'} "
                          "at the default")


def skip_step(state: dict, tc, epoch: int, run_dir: Path) -> None:
    """Count a non-finite step instead of applying it; give up clearly after too many."""
    state["nonfinite_steps"] += 1
    if state["nonfinite_steps"] > tc.max_nonfinite_steps:
        raise TrainingError(
            f"training stopped in epoch {epoch + 1}: {state['nonfinite_steps']} steps had a non-finite loss or "
            f"gradient; the last good checkpoint is in {run_dir} (try a lower --lr or set --grad-clip)")


def check_same_run(saved: Config, new: Config, run_dir: Path) -> None:
    """Resuming is only exact with the same settings; only the epoch count may grow, and the threads,
    memory layout and precision may change (they change speed and rounding, not the model)."""
    a, b = saved.to_dict(), new.to_dict()
    for key in ("epochs", "threads", "channels_last", "precision"):
        a["train"].pop(key), b["train"].pop(key)
    for section in a:
        for key in a[section]:
            if a[section][key] != b[section][key]:
                raise CheckpointError(
                    f"{run_dir} was trained with {section}.{key}={a[section][key]!r}, not {b[section][key]!r}; "
                    "resume with the same settings or choose another --out")


def json_line(obj: dict) -> str:
    return json.dumps(obj) + "\n"
