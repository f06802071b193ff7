"""IWAE evaluation speed against the chunk size over k, per model, as image-samples per second.

    python benchmarks/iwae_chunk.py [--threads 1] [--rounds 3]

`vaekit eval --iwae K` draws the K samples of each batch in chunks of the model's `samples_per_pass`
image-samples (so K in the thousands fits in memory). The chunk also sets how much each pass's
activations spill out of the caches, so the best size differs by architecture. For each model of
benchmarks/mnist_likelihood.py (fresh weights, seed 0; 100 random images of its pixel kind), every
chunk size computes the IWAE bound of the same images, the sizes taking turns so all see the same
machine state; one warm-up round, then the median over the timed rounds. A call covers at least
4,000 image-samples, and at least one whole chunk. (A batch with more images than a pass is scored
in groups of images, one sample each per pass; those passes are the same size as the ones timed
here, so they are not timed apart.)
"""
from __future__ import annotations

import argparse

import torch

from common import interleaved_step_seconds, machine, model_config, write_result
from mnist_likelihood import MODELS

from vaekit.losses import iwae_bound
from vaekit.registry import build_model

CHUNKS = (100, 200, 500, 1000, 2000, 20000)  # image-samples per pass
IMAGES = 100  # as `vaekit eval --batch-size 100`
MIN_SAMPLES = 4000  # image-samples per timed call


def build(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    config = model_config(MODELS[name]["model"])
    torch.manual_seed(0)
    model = build_model(config.model).eval()
    grey = torch.rand(IMAGES, 1, 28, 28)
    x = (grey * 255).round() / 255 if config.model.likelihood == "logistic-mixture" else (grey > 0.87).float()
    return model, x


def iwae_call(model, x: torch.Tensor, chunk: int):
    """One IWAE bound over max(chunk, MIN_SAMPLES) image-samples in passes of `chunk`, and that count."""
    k = max(chunk, MIN_SAMPLES) // len(x)

    def call() -> None:
        iwae_bound(model, x, k, torch.Generator().manual_seed(0), chunk=chunk // len(x))

    return call, k * len(x)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["mlp", "conv", "hvae", "hvae-8bit"], choices=list(MODELS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3, help="timed rounds (after one warm-up round)")
    p.add_argument("--out", default="benchmarks/results/iwae_chunk.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = []
    for name in args.models:
        model, x = build(name)
        calls = {c: iwae_call(model, x, c) for c in CHUNKS}
        seconds = interleaved_step_seconds({c: call for c, (call, _) in calls.items()}, args.rounds, 1)
        rates = {c: calls[c][1] / s for c, s in seconds.items()}
        best = max(rates, key=rates.get)
        results.append({"model": name, "image_samples_per_second": {str(c): r for c, r in rates.items()},
                        "best_chunk": best, "model_chunk": model.samples_per_pass})
        print(f"{name}: " + ", ".join(f"{c}: {r:,.0f}/s" for c, r in rates.items())
              + f"; best {best}, the model's chunk {model.samples_per_pass}", flush=True)
    write_result(args.out, {"machine": machine(), "images": IMAGES, "rounds": args.rounds, "chunks": CHUNKS,
                            "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
