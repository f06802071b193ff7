"""Test NLL on dynamically binarized MNIST against wall-clock training time, for the MLP VAE, the
conv VAE and the hierarchical VAE, each given the same training budget on this machine.

    python benchmarks/mnist_likelihood.py --minutes 20 [--iwae 5000 --eval-images 10000] [--models mlp conv hvae]

Each model's epoch count is set from a timed calibration so that its training fits the budget (the
cosine schedule needs it up front). The curve is the validation -ELBO after each epoch against
minutes; the final point is the IWAE NLL on the test set (binarized once with seed 0). For the
conv models, k and the number of test images can be lowered (--hvae-iwae, --eval-images): stated in
the output.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time

import torch

from common import default_mnist_dir, machine, write_result

from vaekit.config import Config
from vaekit.data import load_dataset
from vaekit.engine.batches import binarize_once, split_validation
from vaekit.engine.trainer import TrainData, fit
from vaekit.metrics import evaluate

MODELS = {
    "mlp": {"model": {"arch": "mlp", "hidden_dims": [400], "latent_dim": 20},
            "train": {"batch_size": 128, "lr": 1e-3, "lr_schedule": "cosine", "ema_decay": 0.999}},
    "conv": {"model": {"arch": "conv", "hidden_dims": [32, 64], "fc_dim": 256, "latent_dim": 32},
             "train": {"batch_size": 128, "lr": 1e-3, "lr_schedule": "cosine", "ema_decay": 0.999}},
    "hvae": {"model": {"arch": "hvae", "latent_dim": 8, "hvae_width": 32, "hvae_middle": 16,
                       "hvae_groups": [3, 3, 1], "hvae_encoder_blocks": 1},
             "train": {"batch_size": 64, "lr": 2e-3, "lr_schedule": "cosine", "warmup_steps": 200,
                       "ema_decay": 0.999, "free_bits": 0.05, "grad_clip": 200.0, "skip_grad_norm": 2000.0}},
}


def seconds_per_epoch(config: Config, train: torch.Tensor) -> float:
    """Time one short run on a slice and scale to the full training set."""
    sample = train[:2048]
    with tempfile.TemporaryDirectory() as out:
        run = fit(config.replace({"epochs": 1}), out, progress=False, data=TrainData(sample, sample[:0], True))
    return run.history[0]["seconds"] * len(train) / len(sample)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=default_mnist_dir())
    p.add_argument("--minutes", type=float, default=20.0, help="training budget per model")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--iwae", type=int, default=5000)
    p.add_argument("--conv-iwae", type=int, default=500, help="k for the conv models (their passes are costly)")
    p.add_argument("--eval-images", type=int, default=10000)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--out", default="benchmarks/results/mnist_likelihood.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    images = load_dataset("mnist", "train", data_dir=args.data_dir).images
    train, val = split_validation(images, 5000 / len(images))
    x_test = binarize_once(load_dataset("mnist", "test", data_dir=args.data_dir).images)[: args.eval_images]
    results = {}
    for name in args.models:
        config = Config.from_dict({"data": {"data": "mnist", "val_fraction": 0}, **MODELS[name]})
        config = config.replace({"threads": args.threads})
        epochs = max(1, int(args.minutes * 60 / seconds_per_epoch(config, train)))
        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            run = fit(config.replace({"epochs": epochs}), out, data=TrainData(train, val, True))
            wall = time.perf_counter() - started
        k = args.iwae if name == "mlp" else args.conv_iwae
        metrics = evaluate(run.model, x_test, iwae_k=k, batch_size=100 if name != "mlp" else 500,
                           generator=torch.Generator().manual_seed(0))
        minutes, curve = 0.0, []
        for h in run.history:
            minutes += h["seconds"] / 60
            curve.append({"minutes": minutes, "val_neg_elbo_nats": h["val_neg_elbo_nats"]})
        results[name] = {"epochs": epochs, "train_minutes": wall / 60, "curve": curve, **metrics,
                         "parameters": sum(p.numel() for p in run.model.parameters())}
        print(f"{name}: {epochs} epochs in {wall / 60:.1f} min, test -ELBO {metrics['neg_elbo_nats']:.2f}, "
              f"IWAE NLL (k={k}, {len(x_test)} images) {metrics['iwae_nll_nats']:.2f} nats", flush=True)
    plot(results, args.out.replace(".json", ".png"))
    write_result(args.out, {"machine": machine(), "budget_minutes": args.minutes, "results": results})
    return 0


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for name, r in results.items():
        ax.plot([c["minutes"] for c in r["curve"]], [c["val_neg_elbo_nats"] for c in r["curve"]], label=f"{name} val -ELBO")
        ax.scatter([r["train_minutes"]], [r["iwae_nll_nats"]], marker="*", s=80, label=f"{name} test IWAE NLL")
    ax.set_xlabel("training minutes (this machine)")
    ax.set_ylabel("nats per image")
    ax.set_ylim(top=min(130, ax.get_ylim()[1]))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
