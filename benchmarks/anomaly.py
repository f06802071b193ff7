"""Anomaly detection on MNIST, the standard one-class protocol (Ruff et al. 2018, Deep SVDD): train
on the training images of one digit, score the whole test set, AUROC with the other nine digits as
anomalies; per digit and the mean over the ten. Each of vaekit's scores is reported: iwae
(importance-weighted NLL), elbo (negative ELBO) and recon (reconstruction NLL).

Then out-of-distribution detection against MNIST: a VAE trained on all MNIST training images
scores the MNIST test set against images of another kind. Only MNIST is available offline, so
the other kinds are the built-in sprites (resized to 28x28) and grey crops of the photographs in
--natural (random squares of 32 to 256 pixels, resized to 28x28).

    python benchmarks/anomaly.py [--data-dir DIR] [--natural DIR] [--epochs 30] [--k 50]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

from common import REPO, default_mnist_dir, machine, write_result

from vaekit.config import Config
from vaekit.data import load_dataset
from vaekit.engine.trainer import TrainData, fit
from vaekit.tasks.anomaly import SCORES, anomaly_scores

VAE = {"data": {"data": "mnist", "val_fraction": 0},
       "model": {"arch": "mlp", "hidden_dims": [512, 256], "latent_dim": 16, "likelihood": "bernoulli"},
       "train": {"batch_size": 128, "lr": 1e-3, "lr_schedule": "cosine", "ema_decay": 0.999}}
ANCHORS = {"Deep SVDD (Ruff et al. 2018)": 94.8, "geometric transformations (Golan & El-Yaniv 2018)": 98.0}
DEFAULT_NATURAL = REPO.parent / "shared" / "data" / "natural" / "val"


def train_vae(images: torch.Tensor, config: Config):
    with tempfile.TemporaryDirectory() as out:
        return fit(config, out, data=TrainData(images, images[:0], binarize=True), progress=False)


def all_scores(model, images: torch.Tensor, k: int) -> dict[str, np.ndarray]:
    return {score: anomaly_scores(model, images, score, k=k) for score in SCORES}


def natural_crops(folder: Path, n_per_image: int = 50, seed: int = 0) -> torch.Tensor:
    """Grey square crops of random size and place from each photo, resized to 28x28: uint8 (N, 1, 28, 28)."""
    rng = np.random.default_rng(seed)
    crops = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp")):
        with Image.open(path) as im:
            grey = im.convert("L")
        for _ in range(n_per_image):
            side = int(rng.integers(32, min(256, *grey.size) + 1))
            left, top = (int(rng.integers(0, s - side + 1)) for s in grey.size)
            crop = grey.crop((left, top, left + side, top + side)).resize((28, 28), Image.Resampling.BICUBIC)
            crops.append(np.asarray(crop, dtype=np.uint8))
    return torch.from_numpy(np.stack(crops)).unsqueeze(1)


def one_class(train, test, config: Config, k: int, digits: list[int]) -> dict:
    per_digit = {}
    for digit in digits:
        started = time.perf_counter()
        run = train_vae(train.images[train.labels == digit], config)
        trained = time.perf_counter() - started
        scores = all_scores(run.model, test.images, k)
        anomalous = (test.labels != digit).numpy()
        per_digit[digit] = {score: 100 * roc_auc_score(anomalous, s) for score, s in scores.items()}
        per_digit[digit]["train_seconds"] = trained
        per_digit[digit]["total_seconds"] = time.perf_counter() - started
        print(f"digit {digit}: AUROC " + ", ".join(f"{s} {per_digit[digit][s]:.1f}" for s in SCORES)
              + f" ({per_digit[digit]['total_seconds']:.0f} s)", flush=True)
    mean = {score: float(np.mean([per_digit[d][score] for d in digits])) for score in SCORES}
    print("mean AUROC: " + ", ".join(f"{s} {mean[s]:.2f}" for s in SCORES), flush=True)
    return {"auroc_percent_per_digit": per_digit, "mean_auroc_percent": mean}


def out_of_distribution(train, test, config: Config, k: int, natural: Path | None) -> dict:
    started = time.perf_counter()
    run = train_vae(train.images, config)
    others = {"sprites (test split, resized to 28x28)": load_dataset("sprites", "test", image_size=28).images}
    if natural and natural.is_dir():
        others[f"grey crops of {natural.name}/ photos, resized to 28x28"] = natural_crops(natural)
    inliers = all_scores(run.model, test.images, k)
    result = {}
    for name, images in others.items():
        outliers = all_scores(run.model, images, k)
        result[name] = {"n_images": len(images), **{
            score: 100 * roc_auc_score(np.r_[np.zeros(len(test)), np.ones(len(images))],
                                       np.r_[inliers[score], outliers[score]]) for score in SCORES}}
        print(f"OOD {name}: AUROC " + ", ".join(f"{s} {result[name][s]:.1f}" for s in SCORES), flush=True)
    result["seconds"] = time.perf_counter() - started
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=default_mnist_dir())
    p.add_argument("--natural", type=Path, default=DEFAULT_NATURAL, help="folder of photos for the OOD set")
    p.add_argument("--epochs", type=int, default=30, help="epochs of each one-class model (~6,000 images)")
    p.add_argument("--ood-epochs", type=int, default=10, help="epochs of the all-MNIST model")
    p.add_argument("--k", type=int, default=50, help="posterior samples per image for iwae and elbo")
    p.add_argument("--digits", default="0,1,2,3,4,5,6,7,8,9")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--out", default="benchmarks/results/anomaly.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    train, test = (load_dataset("mnist", split, data_dir=args.data_dir) for split in ("train", "test"))
    base = Config.from_dict(VAE).replace({"threads": args.threads})
    started = time.perf_counter()
    digits = [int(d) for d in args.digits.split(",")]
    one = one_class(train, test, base.replace({"epochs": args.epochs}), args.k, digits)
    ood = out_of_distribution(train, test, base.replace({"epochs": args.ood_epochs}), args.k, args.natural)
    write_result(args.out, {"machine": machine(), "protocol": "train on one digit's training images, score all "
                            "10,000 test images (grey levels, not binarized), AUROC in percent",
                            "k": args.k, "epochs": args.epochs, "ood_epochs": args.ood_epochs,
                            "vae_config": base.to_dict(), "anchors_mean_auroc_percent": ANCHORS, "one_class": one,
                            "out_of_distribution": ood, "total_seconds": time.perf_counter() - started})
    return 0


if __name__ == "__main__":
    sys.exit(main())
