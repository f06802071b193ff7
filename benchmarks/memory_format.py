"""Training step time with channels-last (NHWC) memory against the default layout, as a ratio in one process.

    python benchmarks/memory_format.py [--threads 1,2] [--rounds 8]

For each model (the hierarchical VAEs of benchmarks/mnist_likelihood.py, the photo denoiser of
docs/restoration.md) and thread count, two copies with the same initial weights take training
steps (loss, backward, AdamW) on the same random batch, as `vaekit train` does with and without
--channels-last; they take turns, 8 steps per turn, so both see the same machine state. The first
round is a warm-up; each layout's median seconds per step over the others, and the speed-up
(default / channels-last: above 1 means channels-last is faster).
"""
from __future__ import annotations

import argparse
import copy

import torch

from common import interleaved_step_seconds, machine, model_config, write_result
from mnist_likelihood import MODELS

from vaekit.config import Config
from vaekit.engine import precision
from vaekit.engine.trainer import compute_loss, make_optimizer
from vaekit.registry import build_model

STEPS_PER_TURN = 8
DENOISER = {"arch": "conv", "hidden_dims": [32, 64], "cvae_width": 64, "cvae_blocks": 8, "cvae_cell_width": 64,
            "cvae_stride": 2, "likelihood": "gaussian", "gaussian_std": 0.02, "condition": "noise",
            "condition_noise_sigma": 0.098, "condition_residual": "on", "tiled": True}
CASES = {  # name: (model settings, image shape, batch)
    "hierarchical VAE, binarized MNIST": (MODELS["hvae"]["model"], (1, 28, 28), 64),
    "hierarchical VAE, 8-bit MNIST": (MODELS["hvae-8bit"]["model"], (1, 28, 28), 64),
    "photo denoiser, 64x64 crops": (DENOISER, (3, 64, 64), 8),
}


def step_seconds(model_settings: dict, shape: tuple[int, int, int], batch: int, rounds: int) -> dict[str, float]:
    config = model_config(model_settings, shape)
    torch.manual_seed(0)
    model = build_model(config.model)
    x = (torch.rand(batch, *shape) * 255).round() / 255
    steps = {}
    for name, layout in (("default", torch.contiguous_format), ("channels_last", torch.channels_last)):
        m = copy.deepcopy(model).to(memory_format=layout)
        steps[name] = training_step(m, make_optimizer(m, config.train), x.contiguous(memory_format=layout), config)
    return interleaved_step_seconds(steps, rounds, STEPS_PER_TURN)


def training_step(model, optimizer, x: torch.Tensor, config: Config, number_format: str = "fp32"):
    """One step of `vaekit train`'s loop on a fixed batch, as a function to call repeatedly."""
    generator = torch.Generator().manual_seed(0)

    def step() -> None:
        with precision.autocast(number_format, x.device):
            loss = compute_loss(model, x, config, 1.0, generator).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", default="1,2", help="thread counts to measure")
    p.add_argument("--rounds", type=int, default=8, help="timed turns per layout (after one warm-up turn)")
    p.add_argument("--out", default="benchmarks/results/memory_format.json")
    args = p.parse_args(argv)
    results = []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for case, (settings, shape, batch) in CASES.items():
            seconds = step_seconds(settings, shape, batch, args.rounds)
            speedup = seconds["default"] / seconds["channels_last"]
            results.append({"model": case, "threads": threads, "batch": batch,
                            "seconds_per_step": seconds, "speedup": speedup})
            print(f"{threads} thread(s), {case}: default {seconds['default'] * 1000:.1f} ms, channels-last "
                  f"{seconds['channels_last'] * 1000:.1f} ms per step: {speedup:.3f}x", flush=True)
    write_result(args.out, {"machine": machine(), "steps_per_turn": STEPS_PER_TURN, "rounds": args.rounds,
                            "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
