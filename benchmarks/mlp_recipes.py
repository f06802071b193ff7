"""Which training recipe gives the classic MLP VAE (784-400-20, batch 128, 10 epochs) the best test
NLL? A quick screen: IWAE k=200 on the first 2,000 test images (binarized once, seed 0), one
thread. The winner goes into benchmarks/mnist_mlp.py, which measures it with k=1000 on all 10,000.

    python benchmarks/mlp_recipes.py [--recipes const lr3e-3+ema ...] [--data-dir DIR]
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
from vaekit.engine.batches import binarize_once
from vaekit.engine.trainer import TrainData, fit
from vaekit.metrics import evaluate

BASE = {"data": {"data": "mnist", "val_fraction": 0}, "model": {"arch": "mlp", "hidden_dims": [400], "latent_dim": 20},
        "train": {"epochs": 10, "batch_size": 128, "lr": 1e-3}}
RECIPES = {  # overrides of BASE; "grey" trains on grey pixels as the PyTorch example does
    "const": {}, "const+ema": {"ema_decay": 0.999}, "cosine+ema": {"lr_schedule": "cosine", "ema_decay": 0.999},
    "lr2e-3": {"lr": 2e-3}, "lr2e-3+ema": {"lr": 2e-3, "ema_decay": 0.999},
    "lr2e-3+cosine+ema": {"lr": 2e-3, "lr_schedule": "cosine", "ema_decay": 0.999},
    "grey+ema": {"ema_decay": 0.999, "binarize": False},
    "lr3e-3": {"lr": 3e-3}, "lr3e-3+ema": {"lr": 3e-3, "ema_decay": 0.999},
    "lr4e-3+warmup+ema": {"lr": 4e-3, "warmup_steps": 200, "ema_decay": 0.999},
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=default_mnist_dir())
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results/mlp_recipes.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    train = load_dataset("mnist", "train", data_dir=args.data_dir).images
    x_test = binarize_once(load_dataset("mnist", "test", data_dir=args.data_dir).images)[:2000]
    results = {}
    for name in args.recipes:
        config = Config.from_dict(BASE).replace({**RECIPES[name], "threads": args.threads})
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as out:
            run = fit(config, out, progress=False, data=TrainData(train, train[:0], binarize=config.data.binarize
                                                               is not False))
        m = evaluate(run.model, x_test, iwae_k=200, generator=torch.Generator().manual_seed(0), progress=False)
        results[name] = {"iwae200_nll_nats": m["iwae_nll_nats"], "neg_elbo_nats": m["neg_elbo_nats"],
                         "minutes": (time.perf_counter() - started) / 60}
        print(f"{name:22s} IWAE(200) {m['iwae_nll_nats']:.2f}  -ELBO {m['neg_elbo_nats']:.2f}", flush=True)
    write_result(args.out, {"machine": machine(), "protocol": "IWAE k=200 on the first 2000 test images",
                            "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
