"""Training step time with --precision bf16 (autocast) against fp32, as a ratio in one process.

    python benchmarks/precision_speed.py [--threads 1,2] [--rounds 8]

For each model of benchmarks/mnist_likelihood.py (the MLP VAE 784-400-20, as peer_speed.py trains
it, and the conv VAE at batch 128; the hierarchical VAEs at 64, channels-last as they train) and
thread count, two copies with the same initial weights take training steps (loss, backward,
AdamW) on the same batch, one in each number format, taking turns of 8 steps; medians after a warm-up
round, and the speed-up (fp32 / bf16: above 1 means bf16 is faster). Also the machine's matrix-product
rate in each format (512-square, small enough for emulated bf16 to finish); `machine` in the JSON
says whether the CPU flags show bf16 units, without which bf16 is emulated and slow.
Speed only: what bf16 does to the likelihood is measured by `peer_speed.py --precision bf16`.
"""
from __future__ import annotations

import argparse
import copy

import torch

from common import interleaved_step_seconds, machine, matmul_peak_gflops, model_config, write_result
from memory_format import STEPS_PER_TURN, training_step
from mnist_likelihood import MODELS

from vaekit.engine.trainer import make_optimizer
from vaekit.registry import build_model

CASES = {  # name: (the benchmark's model and train settings, batch, binarized pixels)
    "MLP VAE 784-400-20": (MODELS["mlp"], 128, True),
    "conv VAE": (MODELS["conv"], 128, True),
    "hierarchical VAE, binarized MNIST": (MODELS["hvae"], 64, True),
    "hierarchical VAE, 8-bit MNIST": (MODELS["hvae-8bit"], 64, False),
}


def step_seconds(settings: dict, batch: int, binary: bool, rounds: int) -> dict[str, float]:
    config = model_config(settings["model"])
    layout = torch.channels_last if settings["train"].get("channels_last") else torch.contiguous_format
    torch.manual_seed(0)
    model = build_model(config.model).to(memory_format=layout)
    x = torch.rand(batch, 1, 28, 28)
    x = (x.round() if binary else (x * 255).round() / 255).contiguous(memory_format=layout)
    steps = {}
    for number_format in ("fp32", "bf16"):
        m = copy.deepcopy(model)
        steps[number_format] = training_step(m, make_optimizer(m, config.train), x, config, number_format)
    return interleaved_step_seconds(steps, rounds, STEPS_PER_TURN)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", default="1,2", help="thread counts to measure")
    p.add_argument("--rounds", type=int, default=8, help="timed turns per number format (after one warm-up turn)")
    p.add_argument("--out", default="benchmarks/results/precision_speed.json")
    args = p.parse_args(argv)
    results = []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        peak = {name: matmul_peak_gflops(dtype, n=512, reps=5)
                for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
        print(f"threads {threads}: matmul peak fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f}", flush=True)
        for case, (settings, batch, binary) in CASES.items():
            seconds = step_seconds(settings, batch, binary, args.rounds)
            speedup = seconds["fp32"] / seconds["bf16"]
            results.append({"case": case, "threads": threads, "batch": batch, "matmul_peak_gflops": peak,
                            "seconds_per_step": seconds, "bf16_speedup": speedup})
            print(f"  {case}: fp32 {seconds['fp32'] * 1000:.1f} ms, bf16 {seconds['bf16'] * 1000:.1f} ms "
                  f"per step ({speedup:.2f}x)", flush=True)
    write_result(args.out, {"machine": machine(), "steps_per_turn": STEPS_PER_TURN, "rounds": args.rounds,
                            "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
