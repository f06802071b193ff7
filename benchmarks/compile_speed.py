"""Training step time with torch.compile (inductor) against eager PyTorch, as a ratio in one process.

    python benchmarks/compile_speed.py [--threads 2] [--rounds 8]

For each model of benchmarks/mnist_likelihood.py (in its memory layout there), two copies with the
same initial weights take `vaekit train`'s training step (loss, backward, AdamW) on the same random
batch, one of them through `torch.compile(model)`. The compiled copy's first step, which compiles
(in an empty inductor cache, so nothing compiled earlier is reused), is timed on its own; then the
two take turns, 8 steps per turn, one warm-up round first, and each reports its median seconds per
step. The speed-up is eager / compiled (above 1: compiling is faster), and the break-even is the
number of steps after which compiling would have paid for itself.
"""
from __future__ import annotations

import argparse
import atexit
import copy
import os
import shutil
import tempfile
import time

CACHE = os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-")  # set before torch loads
atexit.register(shutil.rmtree, CACHE, True)
import torch

from common import interleaved_step_seconds, machine, write_result
from memory_format import STEPS_PER_TURN, training_step
from mnist_likelihood import MODELS

from vaekit.config import Config, binarizes
from vaekit.engine.trainer import make_optimizer
from vaekit.registry import build_model

CASES = {"MLP VAE 784-400-20, binarized MNIST": "mlp", "hierarchical VAE, binarized MNIST": "hvae",
         "hierarchical VAE, 8-bit MNIST": "hvae-8bit"}  # name: model of benchmarks/mnist_likelihood.py


def measure(name: str, rounds: int) -> dict:
    settings = MODELS[name]
    config = Config.from_dict({"model": settings["model"], "train": settings["train"]}).replace(
        {"image_shape": [1, 28, 28]})
    layout = torch.channels_last if config.train.channels_last else torch.contiguous_format
    torch.manual_seed(0)
    model = build_model(config.model).to(memory_format=layout)
    batch = config.train.batch_size
    x = torch.rand(batch, 1, 28, 28)
    x = ((x > 0.5).float() if binarizes(config) else (x * 255).round() / 255).contiguous(memory_format=layout)
    steps = {}
    for kind in ("eager", "compiled"):
        m = copy.deepcopy(model)
        runs = torch.compile(m) if kind == "compiled" else m
        steps[kind] = training_step(runs, make_optimizer(m, config.train), x, config)
    started = time.perf_counter()
    steps["compiled"]()
    compile_seconds = time.perf_counter() - started
    seconds = interleaved_step_seconds(steps, rounds, STEPS_PER_TURN)
    saved = seconds["eager"] - seconds["compiled"]
    return {"batch": batch, "seconds_per_step": seconds, "speedup": seconds["eager"] / seconds["compiled"],
            "first_compiled_step_seconds": compile_seconds,
            "break_even_steps": compile_seconds / saved if saved > 0 else None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", default="2", help="thread counts to measure")
    p.add_argument("--rounds", type=int, default=8, help="timed turns per variant (after one warm-up turn)")
    p.add_argument("--out", default="benchmarks/results/compile_speed.json")
    args = p.parse_args(argv)
    results = []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for case, name in CASES.items():
            torch._dynamo.reset()  # each case compiles afresh, so its first step's time is its compile time
            r = {"model": case, "threads": threads, **measure(name, args.rounds)}
            results.append(r)
            s = r["seconds_per_step"]
            print(f"{threads} thread(s), {case}: eager {s['eager'] * 1000:.1f} ms, compiled {s['compiled'] * 1000:.1f} "
                  f"ms per step: {r['speedup']:.3f}x; first compiled step {r['first_compiled_step_seconds']:.1f} s",
                  flush=True)
    write_result(args.out, {"machine": machine(), "steps_per_turn": STEPS_PER_TURN,
                            "rounds": args.rounds, "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
