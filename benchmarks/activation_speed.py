"""Training step time of the hierarchical VAE with each cell activation (--hvae-activation), as
ratios to GELU in one process.

    python benchmarks/activation_speed.py [--threads 2] [--rounds 8]

The models of benchmarks/mnist_likelihood.py (binarized and 8-bit MNIST, batch 64, channels-last as
they train), one copy per activation with the same weights (activations have none), taking turns of
8 training steps on the same batch. Speed only: what each activation does to the likelihood after a
given training time takes a full run of benchmarks/mnist_likelihood.py.
"""
from __future__ import annotations

import argparse

import torch

from common import interleaved_step_seconds, machine, model_config, write_result
from memory_format import STEPS_PER_TURN, training_step
from mnist_likelihood import MODELS

from vaekit.engine.trainer import make_optimizer
from vaekit.nn.blocks import ACTIVATIONS
from vaekit.registry import build_model


def step_seconds(model_settings: dict, rounds: int) -> dict[str, float]:
    x = ((torch.rand(64, 1, 28, 28) * 255).round() / 255).contiguous(memory_format=torch.channels_last)
    steps = {}
    for activation in ACTIVATIONS:
        config = model_config(model_settings, hvae_activation=activation)
        torch.manual_seed(0)
        model = build_model(config.model).to(memory_format=torch.channels_last)
        steps[activation] = training_step(model, make_optimizer(model, config.train), x, config)
    return interleaved_step_seconds(steps, rounds, STEPS_PER_TURN)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=8, help="timed turns per activation (after one warm-up turn)")
    p.add_argument("--out", default="benchmarks/results/activation_speed.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {}
    for name in ("hvae", "hvae-8bit"):
        seconds = step_seconds(MODELS[name]["model"], args.rounds)
        results[name] = {"seconds_per_step": seconds,
                         "speedup_over_gelu": {a: seconds["gelu"] / s for a, s in seconds.items()}}
        timings = [f"{a} {s * 1000:.1f} ms ({seconds['gelu'] / s:.2f}x)" for a, s in seconds.items()]
        print(f"{name}: " + ", ".join(timings), flush=True)
    write_result(args.out, {"machine": machine(), "batch": 64, "steps_per_turn": STEPS_PER_TURN,
                            "rounds": args.rounds, "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
