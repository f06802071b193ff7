"""VAE vs VAE-GAN of the same size and the same training time on MNIST: Fréchet distance in the
features of vaekit's MNIST classifier (vaekit.quality), sharpness of the samples, and the ELBO /
IWAE NLL on the binarized test set (defined for both: the VAE-GAN keeps the VAE's Bernoulli decoder).

Both models have the same MLP encoder and decoder; the VAE-GAN adds Larsen et al.'s discriminator
(used only in training). The VAE-GAN trains for --gan-epochs; the VAE then trains for as many epochs
as fit in the same CPU time (process time, so other jobs on a shared machine do not skew it):
one epoch is timed and the run resumed to the matching count.

    python benchmarks/vaegan.py [--data-dir /work/shared/data/mnist] [--gan-epochs 4] [--threads 1]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from common import REPO, default_mnist_dir, machine, write_result

from vaekit.config import Config
from vaekit.data import load_dataset
from vaekit.engine.batches import binarize_once
from vaekit.engine.trainer import fit, prepare_data
from vaekit.imaging import save_grid
from vaekit.metrics import evaluate
from vaekit.quality import feature_classifier, sample_quality

BASE = {"data": {"data": "mnist", "val_fraction": 0.0},
        "model": {"arch": "mlp", "hidden_dims": [512], "latent_dim": 16, "likelihood": "bernoulli"},
        "train": {"batch_size": 128, "lr": 1e-3}}
GAN = {"model": "vaegan", "vaegan_base": "mlp", "disc_arch": "mlp", "disc_widths": (256, 128)}


def train_timed(config: Config, out: Path, data, resume: bool = False) -> float:
    started = time.process_time()
    fit(config, out, data=data, resume=resume, progress=False)
    return time.process_time() - started


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=default_mnist_dir())
    p.add_argument("--gan-epochs", type=int, default=4)
    p.add_argument("--limit", type=int, help="train on at most this many images (quick checks)")
    p.add_argument("--samples", type=int, default=5000, help="samples (and test images) for FD and sharpness")
    p.add_argument("--iwae", type=int, default=100, help="importance samples for the NLL on 1,000 test images")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a VAE-GAN setting")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", default="/tmp/vaegan/bench", help="where the two runs are kept")
    p.add_argument("--classifier-dir", help="cache of vaekit's FD classifiers (default: vaekit's)")
    p.add_argument("--out", default=str(REPO / "benchmarks/results/vaegan.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    train = load_dataset("mnist", "train", data_dir=args.data_dir)
    test = load_dataset("mnist", "test", data_dir=args.data_dir)
    started = time.process_time()
    classifier = feature_classifier(train.images, train.labels, "mnist", cache_dir=args.classifier_dir)
    classifier_s = time.process_time() - started

    base = Config.from_dict(BASE).replace({"data_dir": args.data_dir, "threads": args.threads, "limit": args.limit})
    gan = base.replace({**GAN, "epochs": args.gan_epochs, **dict(s.split("=", 1) for s in args.set)})
    data = prepare_data(base, progress=False)
    runs = Path(args.runs)
    gan_s = train_timed(gan, runs / "vaegan", data)
    vae_one = train_timed(base.replace({"epochs": 1}), runs / "vae", data)
    vae_epochs = max(1, round(gan_s / vae_one))
    vae_s = vae_one + (train_timed(base.replace({"epochs": vae_epochs}), runs / "vae", data, resume=True)
                       if vae_epochs > 1 else 0.0)

    from vaekit.api import load

    results, grids = {}, []
    x_test = binarize_once(test.images[:1000])
    for name, epochs, seconds in (("vae", vae_epochs, vae_s), ("vaegan", args.gan_epochs, gan_s)):
        run = load(runs / name)
        quality = sample_quality(run.model, test.images, classifier, n=args.samples, seed=0,
                                 reference=train.images[-args.samples:])
        likelihood = evaluate(run.model, x_test, iwae_k=args.iwae, generator=torch.Generator().manual_seed(0),
                              progress=False)
        results[name] = {"epochs": epochs, "train_cpu_seconds": seconds, **quality,
                         "test_neg_elbo_nats": likelihood["neg_elbo_nats"],
                         "test_iwae_nll_nats": likelihood.get("iwae_nll_nats"),
                         "parameters_encoder_decoder": sum(p.numel() for n, p in run.model.named_parameters()
                                                           if not n.startswith("discriminator."))}
        grids.append(run.model.sample(32, generator=torch.Generator().manual_seed(1)))
        print(f"{name}: {epochs} epochs, {seconds:.0f} CPU s; FD {quality['fd_classifier']:.2f}, sharpness "
              f"{quality['sharpness_samples']:.4f}, -ELBO {likelihood['neg_elbo_nats']:.2f}, "
              f"IWAE NLL {likelihood.get('iwae_nll_nats', float('nan')):.2f}", flush=True)
    picture = Path(args.out).with_name("vaegan_samples.png")
    save_grid(picture, torch.cat(grids), nrow=16)
    write_result(args.out, {
        "machine": machine(), "data": "mnist", "classifier_cpu_seconds": classifier_s,
        "picture": str(picture.relative_to(REPO)) if picture.is_relative_to(REPO) else str(picture),
        "picture_rows": "top two rows: VAE samples; bottom two: VAE-GAN samples (same seed)",
        "fd": "Fréchet distance, vaekit MNIST classifier features (128-d), samples vs the first N test images",
        "sharpness": "mean variance of the Laplacian, pixels in [0, 1]",
        "vae_config": base.replace({"epochs": vae_epochs}).to_dict(), "vaegan_config": gan.to_dict(),
        "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
