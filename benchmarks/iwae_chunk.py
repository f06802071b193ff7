"""IWAE evaluation speed against the chunk size over k, per model, as image-samples per second.

    python benchmarks/iwae_chunk.py [--threads 1] [--rounds 3]
    python benchmarks/iwae_chunk.py --models denoise-cvae upscale-cvae photo-x4 \\
        --out benchmarks/results/iwae_chunk_conditional.json

`vaekit eval --iwae K` draws the K samples of each batch in chunks of the model's `samples_per_pass`
image-samples (so K in the thousands fits in memory). The chunk also sets how much each pass's
activations spill out of the caches, so the best size differs by architecture. For each model of
benchmarks/mnist_likelihood.py (fresh weights, seed 0; 100 random images of its pixel kind), every
chunk size computes the IWAE bound of the same images, the sizes taking turns so all see the same
machine state; one warm-up round, then the median over the timed rounds. The conditional VAEs of the
restoration tasks are timed the same way: the MNIST models of benchmarks/restoration.py, and the photo
x4 model of docs/restoration.md on 48x48 colour crops. A call covers at least 4,000 image-samples, and
at least one whole chunk. (A batch with more images than a pass is scored in groups of images, one
sample each per pass; those passes are the same size as the ones timed here, so they are not timed
apart.)
"""
from __future__ import annotations

import argparse

import torch

from common import interleaved_step_seconds, machine, model_config, write_result
from mnist_likelihood import MODELS
from restoration import MODELS as RESTORATION_MODELS

from vaekit.config import binarizes
from vaekit.losses import iwae_bound
from vaekit.registry import build_model

CHUNKS = (100, 200, 500, 1000, 2000, 20000)  # image-samples per pass
IMAGES = 100  # as `vaekit eval --batch-size 100`
MIN_SAMPLES = 4000  # image-samples per timed call
# name: (model settings, image shape)
SETTINGS = {**{name: (spec["model"], (1, 28, 28)) for name, spec in MODELS.items()},
            **{name: (RESTORATION_MODELS[name][0], (1, 28, 28)) for name in ("denoise-cvae", "upscale-cvae")},
            "photo-x4": ({"arch": "conv", "hidden_dims": [32, 64], "cvae_width": 64, "cvae_blocks": 8, "cvae_stride": 4,
                          "likelihood": "gaussian", "gaussian_std": 0.02, "condition": "downscale",
                          "condition_scale": 4, "condition_resample": "bicubic"}, (3, 48, 48))}


def build(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    settings, shape = SETTINGS[name]
    config = model_config(settings, shape)
    torch.manual_seed(0)
    model = build_model(config.model).eval()
    grey = torch.rand(IMAGES, *shape)
    if config.model.likelihood == "logistic-mixture":
        return model, (grey * 255).round() / 255
    return model, (grey > 0.87).float() if binarizes(config) else grey


def iwae_call(model, x: torch.Tensor, chunk: int):
    """One IWAE bound over max(chunk, MIN_SAMPLES) image-samples in passes of `chunk`, and that count."""
    k = max(chunk, MIN_SAMPLES) // len(x)

    def call() -> None:
        iwae_bound(model, x, k, torch.Generator().manual_seed(0), chunk=chunk // len(x))

    return call, k * len(x)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["mlp", "conv", "hvae", "hvae-8bit"], choices=list(SETTINGS))
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
