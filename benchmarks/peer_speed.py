"""vaekit vs pythae on the same MLP VAE (784-400-20, batch 128, same epochs and threads): training
images/second and the test NLL each reaches (IWAE k=1000, test set binarized once, seed 0).

    pip install -e ".[peers]"     # pythae from PyPI
    python benchmarks/peer_speed.py [--threads 1] [--epochs 10] [--repeats 3] [--data-dir DIR] [--precision bf16]

pythae trains with its defaults (Adam 1e-3, BCE on the grey pixels); vaekit with its own recipe for
this model and budget (benchmarks/mnist_mlp.py: BCE on the grey pixels too, AdamW 3e-3, EMA weights).
Both are timed the same way, over their epoch loops only (pythae's `train_step`, vaekit's epochs),
not their set-up and saving. The two train in turns, `--repeats` times each, so both see the same
machine; the ratio is of the median throughputs. The last run's models are scored by the same
evaluation code after copying pythae's weights into vaekit's identical architecture.
`--precision bf16` trains vaekit's model with bf16 products (pythae has no such option; results go
to peer_speed_bf16.json).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import torch
from torch import nn

from common import default_mnist_dir, machine, mnist_protocol, write_result
from mnist_mlp import VAEKIT

from vaekit.config import Config, binarizes
from vaekit.engine.trainer import TrainData, fit
from vaekit.metrics import evaluate
from vaekit.registry import build_model

MLP = VAEKIT["model"]  # 784-400-20, the architecture pythae builds too


def train_pythae(images: torch.Tensor, epochs: int, out: str):
    """pythae's VAE and BaseTrainer with our architecture as its custom encoder/decoder."""
    from pythae.data.datasets import BaseDataset
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.trainers import BaseTrainer, BaseTrainerConfig

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(784, 400), nn.ReLU(), nn.Linear(400, 40))

        def forward(self, x):
            mu, log_var = self.net(x.reshape(len(x), -1)).chunk(2, dim=-1)
            return ModelOutput(embedding=mu, log_covariance=log_var)

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(20, 400), nn.ReLU(), nn.Linear(400, 784))

        def forward(self, z):
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)).reshape(len(z), 1, 28, 28))

    model = VAE(VAEConfig(input_dim=(1, 28, 28), latent_dim=20, reconstruction_loss="bce"),
                encoder=Encoder(), decoder=Decoder())
    config = BaseTrainerConfig(output_dir=out, num_epochs=epochs, per_device_train_batch_size=128,
                               learning_rate=1e-3, optimizer_cls="Adam", no_cuda=True, steps_saving=None)
    trainer = BaseTrainer(model=model, train_dataset=BaseDataset(images, torch.zeros(len(images))),
                          training_config=config)
    epoch_seconds = []
    train_step = trainer.train_step

    def timed_train_step(epoch):  # pythae's epoch loop, timed as vaekit times its epochs
        started = time.perf_counter()
        loss = train_step(epoch)
        epoch_seconds.append(time.perf_counter() - started)
        return loss

    trainer.train_step = timed_train_step
    trainer.train()
    vaekit_model = build_model(Config().replace({**MLP, "image_shape": (1, 28, 28)}).model)
    vaekit_model.encoder.net.load_state_dict(model.encoder.net.state_dict())
    vaekit_model.decoder.net.load_state_dict(model.decoder.net.state_dict())
    return vaekit_model, sum(epoch_seconds)


def vaekit_config(args) -> Config:
    return Config.from_dict(VAEKIT).replace({"epochs": args.epochs, "threads": args.threads,
                                             "precision": args.precision})


def train_vaekit(train: torch.Tensor, args, out: str):
    config = vaekit_config(args)
    run = fit(config, out, progress=False, data=TrainData(train, train[:0], binarize=binarizes(config)))
    return run.model, sum(h["seconds"] for h in run.history)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=default_mnist_dir())
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--iwae", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3, help="training runs of each library, taking turns")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"), help="vaekit's training step")
    p.add_argument("--out", default=None, help="default: benchmarks/results/peer_speed[_bf16].json")
    args = p.parse_args(argv)
    out = args.out or f"benchmarks/results/peer_speed{'' if args.precision == 'fp32' else '_bf16'}.json"
    torch.set_num_threads(args.threads)

    train, x_test = mnist_protocol(args.data_dir)
    trainers = {"pythae": lambda tmp: train_pythae(train.float() / 255, args.epochs, tmp),
                "vaekit": lambda tmp: train_vaekit(train, args, tmp)}
    speeds, models = {name: [] for name in trainers}, {}
    for repeat in range(args.repeats):
        for name, train_one in trainers.items():
            with tempfile.TemporaryDirectory() as tmp:
                models[name], seconds = train_one(tmp + "/run")
            speeds[name].append(args.epochs * len(train) / seconds)
            print(f"run {repeat + 1}/{args.repeats} {name:8s} {speeds[name][-1]:8.0f} images/s", flush=True)
    results = {}
    for name, model in models.items():
        results[name] = {"images_per_second": statistics.median(speeds[name]), "runs_images_per_second": speeds[name]}
        results[name].update(evaluate(model, x_test, iwae_k=args.iwae, generator=torch.Generator().manual_seed(0)))
        print(f"{name:8s} {results[name]['images_per_second']:8.0f} images/s (median)   "
              f"-ELBO {results[name]['neg_elbo_nats']:.2f}   IWAE NLL {results[name]['iwae_nll_nats']:.2f} nats",
              flush=True)
    ratio = results["vaekit"]["images_per_second"] / results["pythae"]["images_per_second"]
    print(f"vaekit / pythae throughput: {ratio:.2f}x (runs: "
          f"{', '.join(f'{v / p:.2f}x' for v, p in zip(speeds['vaekit'], speeds['pythae']))})")
    write_result(out, {"machine": machine(), "epochs": args.epochs, "iwae_k": args.iwae, "precision": args.precision,
                       "repeats": args.repeats, "timed": "epoch loops only (pythae: train_step; vaekit: epochs)",
                       "vaekit_config": vaekit_config(args).to_dict(), "results": results,
                       "throughput_ratio": ratio})
    return 0


if __name__ == "__main__":
    sys.exit(main())
