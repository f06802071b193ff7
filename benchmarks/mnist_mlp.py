"""The classic MLP VAE (784-400-20, batch 128, Adam 1e-3, 10 epochs) scored on binarized MNIST: test
negative ELBO and IWAE NLL (k=1000) on the test set binarized once with seed 0.

    python benchmarks/mnist_mlp.py [--data-dir DIR] [--iwae 1000] [--skip-baseline]

Trains the PyTorch example's own loop (pytorch/examples vae/main.py: continuous pixels, Adam 1e-3)
and vaekit's trainer with the same architecture, epochs and batch (vaekit's own recipe otherwise),
then scores both with the same evaluation code.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import ExampleVAE, default_mnist_dir, machine, mnist_protocol, train_example, write_result

from vaekit.config import Config, binarizes, load_yaml
from vaekit.engine.trainer import TrainData, fit
from vaekit.metrics import evaluate
from vaekit.registry import build_model

# vaekit's recipe for this fixed architecture, batch and epoch budget, chosen by mlp_recipes.py and
# recipe_speed.py (the reasons are in the config's comments): the shipped config, so that
# `vaekit train configs/mnist_mlp.yaml` trains what this script and peer_speed.py measure.
VAEKIT = load_yaml(Path(__file__).resolve().parents[1] / "configs" / "mnist_mlp.yaml")


def as_vaekit_model(example: ExampleVAE):
    """The example's weights in vaekit's MLP VAE, so both are scored by the same code."""
    config = Config().replace({"image_shape": (1, 28, 28), "hidden_dims": (400,), "latent_dim": 20})
    model = build_model(config.model)
    enc, dec = model.encoder.net, model.decoder.net
    with torch.no_grad():
        enc[0].weight.copy_(example.fc1.weight), enc[0].bias.copy_(example.fc1.bias)
        enc[2].weight.copy_(torch.cat([example.fc21.weight, example.fc22.weight]))
        enc[2].bias.copy_(torch.cat([example.fc21.bias, example.fc22.bias]))
        dec[0].weight.copy_(example.fc3.weight), dec[0].bias.copy_(example.fc3.bias)
        dec[2].weight.copy_(example.fc4.weight), dec[2].bias.copy_(example.fc4.bias)
    return model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=default_mnist_dir())
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--iwae", type=int, default=1000)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--skip-baseline", action="store_true")
    p.add_argument("--out", default="benchmarks/results/mnist_mlp.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    train, x_test = mnist_protocol(args.data_dir)
    results = {}

    def score(name, model, seconds):
        metrics = evaluate(model, x_test, iwae_k=args.iwae, generator=torch.Generator().manual_seed(0))
        results[name] = {**metrics, "train_seconds": seconds}
        print(f"{name}: -ELBO {metrics['neg_elbo_nats']:.2f}, IWAE NLL {metrics['iwae_nll_nats']:.2f} nats "
              f"(trained in {seconds:.0f} s)", flush=True)

    if not args.skip_baseline:
        started = time.perf_counter()
        example, _ = train_example(train.float() / 255, args.epochs)
        score("pytorch example loop", as_vaekit_model(example), time.perf_counter() - started)

    config = Config.from_dict(VAEKIT).replace({"epochs": args.epochs, "threads": args.threads})
    with tempfile.TemporaryDirectory() as out:
        run = fit(config, out, data=TrainData(train, train[:0], binarize=binarizes(config)))
    score("vaekit", run.model, sum(h["seconds"] for h in run.history))
    write_result(args.out, {"machine": machine(), "epochs": args.epochs, "iwae_k": args.iwae,
                            "test_binarization": "torch.manual_seed(0); torch.bernoulli(x_test)",
                            "vaekit_config": config.to_dict(), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
