"""Training step time of the photo codec at two latent sizes M, as a ratio in one process.

    python benchmarks/codec_step_time.py [--latents 96,192] [--rounds 6] [--threads 2]

The photo config's codec (hyperprior, N=64, DCT shortcut, five quality levels) at each M takes
training steps (forward, rate-distortion loss, backward, Adam) on a batch of 8 random 128x128
crops; the models take turns, 5 steps per turn, so both see the same machine state. The first
round is a warm-up; the result is each model's median seconds per step over the other rounds and
their ratio to the first M.
"""
from __future__ import annotations

import argparse
from functools import partial

import torch

from common import interleaved_step_seconds, machine, write_result

from vaekit.losses import rate_distortion_loss
from vaekit.models.transform import TransformCodec

LAMBDAS = (0.0025, 0.005, 0.01, 0.02, 0.04)
STEPS_PER_TURN = 5


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--latents", default="96,192", help="latent sizes M to compare, the first is the baseline")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/codec_step_time.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x, quality = torch.rand(8, 3, 128, 128), torch.randint(len(LAMBDAS), (8,))
    lambdas = torch.tensor(LAMBDAS)[quality]
    latents = [int(v) for v in args.latents.split(",")]
    models = {m: TransformCodec((3, 128, 128), "hyperprior", 64, m, LAMBDAS, "dct") for m in latents}
    optimizers = {m: torch.optim.Adam(model.parameters(), 1e-4) for m, model in models.items()}

    def training_step(m: int) -> None:
        loss = rate_distortion_loss(models[m](x, quality), x, lambdas).loss
        optimizers[m].zero_grad()
        loss.backward()
        optimizers[m].step()

    step = interleaved_step_seconds({m: partial(training_step, m) for m in latents}, args.rounds - 1, STEPS_PER_TURN)
    ratio = {m: step[m] / step[latents[0]] for m in latents}
    for m in latents:
        print(f"M={m}: {step[m]:.3f} s per step of 8 crops, {ratio[m]:.2f}x M={latents[0]}")
    write_result(args.out, {"machine": machine(), "threads": args.threads, "batch": 8, "crop": 128,
                            "seconds_per_step": step, "ratio": ratio})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
