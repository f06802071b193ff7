"""Shared by the benchmark scripts: data location, machine description, JSON output, the
PyTorch example's VAE as the reference peer."""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"


def default_mnist_dir() -> str | None:
    """The shared IDX copy when it is there; otherwise vaekit downloads MNIST itself."""
    return str(SHARED_MNIST) if SHARED_MNIST.is_dir() else None


def mnist_protocol(data_dir: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The core protocol's data: the uint8 training images, and the test images binarized once
    with seed 0 (float)."""
    from vaekit.data import load_dataset
    from vaekit.engine.batches import binarize_once

    train = load_dataset("mnist", "train", data_dir=data_dir).images
    return train, binarize_once(load_dataset("mnist", "test", data_dir=data_dir).images)


def machine() -> dict:
    """What the timings depend on: the same script runs 2-3x faster on some x86 CPUs than on others
    (and bf16 pays only with bf16 units), so timings compare only within one such description."""
    from vaekit.engine.precision import cpu_has_bf16

    return {"cpu": platform.processor() or platform.machine(), "cpu_model": cpu_model(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu_has_bf16": cpu_has_bf16(),
            "cores": os.cpu_count(),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "date": date.today().isoformat()}


def cpu_model() -> str:
    """The CPU's marketing name, from /proc/cpuinfo (Linux) or the platform module."""
    from vaekit.engine.precision import read_cpuinfo

    lines = (read_cpuinfo() or "").splitlines()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
                platform.processor() or "unknown")


def model_config(settings: dict, shape=(1, 28, 28), **overrides):
    """The config of a model given by its `model` settings (as in mnist_likelihood.MODELS) for images
    of `shape`, with further overrides by field or flag name."""
    from vaekit.config import Config

    return Config().replace({**{f"model.{k}": v for k, v in settings.items()}, "image_shape": list(shape),
                             **overrides})


def earlier(path: str | Path, key: str) -> dict:
    """What a result file already holds under `key` ({} if nothing), for scripts that measure
    part of their table per run and keep the rest."""
    path = Path(path)
    return json.loads(path.read_text()).get(key, {}) if path.exists() else {}


def interleaved_step_seconds(steps: dict, timed_rounds: int, per_turn: int) -> dict:
    """Median seconds per call of each named step function (one training step each), the functions
    taking turns of `per_turn` calls so all see the same machine state; one warm-up round first."""
    times = {name: [] for name in steps}
    for round_ in range(timed_rounds + 1):
        for name, step in steps.items():
            started = time.perf_counter()
            for _ in range(per_turn):
                step()
            if round_:
                times[name].append((time.perf_counter() - started) / per_turn)
    return {name: statistics.median(t) for name, t in times.items()}


def write_result(path: str | Path, result: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


class ExampleVAE(nn.Module):
    """The VAE of pytorch/examples (vae/main.py), layer for layer: 784-400-20, ReLU."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def forward(self, x):
        h = F.relu(self.fc1(x.view(-1, 784)))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


def example_loss(recon_x, mu, logvar, x):
    bce = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction="sum")
    return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def train_example(images: torch.Tensor, epochs: int, seed: int = 0, binarize: bool = False) -> tuple[ExampleVAE, float]:
    """The tutorial loop: per-item TensorDataset + DataLoader (batch 128, shuffle), Adam 1e-3.
    Returns the model and the training images per second."""
    torch.manual_seed(seed)
    model = ExampleVAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images), batch_size=128, shuffle=True)
    started = time.perf_counter()
    for _ in range(epochs):
        for (x,) in loader:
            if binarize:
                x = torch.bernoulli(x)
            opt.zero_grad()
            loss = example_loss(*model(x), x)
            loss.backward()
            opt.step()
    return model, epochs * len(images) / (time.perf_counter() - started)


def matmul_peak_gflops(dtype: torch.dtype = torch.float32, n: int = 2048, reps: int = 10) -> float:
    """This machine's sustained matrix-multiply rate at the current thread count."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    started = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - started) / 1e9
