"""Two variants of the MLP VAE recipe that peer_speed.py trains, differing in one setting: training-step
time as a ratio in one process, and the test NLL each reaches.

    python benchmarks/recipe_speed.py --compare {ema,pixels} [--threads 1] [--precision bf16] [--rounds 8]
                                      [--quality] [--seed 0] [--out FILE]

- `ema`: the EMA folded in after every step against every 10th (train.ema_every);
- `pixels`: batches binarized afresh (dynamic binarization) against the grey pixels (data.binarize).

Speed: two trainers with the recipe's settings take whole training steps (drawing the batch, then
`Trainer.train_step`: loss, backward, AdamW, EMA) on the MNIST training images, taking turns of 20 steps
(so each turn folds the EMA the same number of times); medians after a warm-up turn. `--quality` also
trains each for the recipe's 10 epochs and scores its EMA weights (IWAE k=1000 on the 10,000 test images
binarized once, seed 0), the measure peer_speed.py reports.
"""
from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

import torch

from common import default_mnist_dir, interleaved_step_seconds, machine, mnist_protocol, write_result
from mnist_mlp import VAEKIT

from vaekit.config import Config, binarizes
from vaekit.engine.batches import batches, epoch_generator
from vaekit.engine.distributed import World
from vaekit.engine.trainer import Trainer, TrainData, fit, resolve_config
from vaekit.metrics import evaluate

VARIANTS = {  # the two settings compared, each as overrides of the recipe
    "ema": {"every step": {"ema_every": 1}, "every 10 steps": {"ema_every": 10}},
    "pixels": {"binarized": {"binarize": True}, "grey": {"binarize": False}},
}
STEPS_PER_TURN = 20


def recipe(args, overrides: dict) -> Config:
    return Config.from_dict(VAEKIT).replace({"threads": args.threads, "precision": args.precision, "seed": args.seed,
                                             **overrides})


def stepper(config: Config, data: TrainData, run_dir: str):
    """A function that takes the next training step of a fresh trainer (seed 0)."""
    trainer = Trainer(resolve_config(config, data), data, Path(run_dir), World(), progress=False)
    g = epoch_generator(config.train.seed, 0)
    stream = itertools.chain.from_iterable(
        batches(data.train, config.train.batch_size, g, data.binarize) for _ in itertools.count())
    return lambda: trainer.train_step(next(stream), 0, g)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--compare", required=True, choices=list(VARIANTS))
    p.add_argument("--data-dir", default=default_mnist_dir())
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    p.add_argument("--rounds", type=int, default=8, help="timed turns per variant (after one warm-up turn)")
    p.add_argument("--quality", action="store_true", help="also train 10 epochs each and score the test NLL")
    p.add_argument("--seed", type=int, default=0, help="the trainers' seed")
    p.add_argument("--out", default=None, help="default: benchmarks/results/recipe_speed_<compare>_<precision>.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    train, x_test = mnist_protocol(args.data_dir)
    configs = {name: recipe(args, overrides) for name, overrides in VARIANTS[args.compare].items()}
    data = {name: TrainData(train, train[:0], binarize=binarizes(config)) for name, config in configs.items()}

    with tempfile.TemporaryDirectory() as tmp:
        steps = {name: stepper(config, data[name], tmp) for name, config in configs.items()}
        seconds = interleaved_step_seconds(steps, args.rounds, STEPS_PER_TURN)
    names = list(configs)
    result = {"machine": machine(), "compare": args.compare, "variants": VARIANTS[args.compare], "seed": args.seed,
              "precision": args.precision, "rounds": args.rounds, "steps_per_turn": STEPS_PER_TURN,
              "ms_per_step": {n: s * 1e3 for n, s in seconds.items()},
              "speedup": seconds[names[0]] / seconds[names[1]]}
    print(f"{args.precision}: " + ", ".join(f"{n} {s * 1e3:.2f} ms/step" for n, s in seconds.items())
          + f" ({result['speedup']:.3f}x)", flush=True)

    if args.quality:
        result["test"] = {}
        for name, config in configs.items():
            with tempfile.TemporaryDirectory() as tmp:
                run = fit(config, tmp + "/run", progress=False, data=data[name])
            scores = evaluate(run.model, x_test, iwae_k=1000, generator=torch.Generator().manual_seed(0))
            result["test"][name] = {"epochs": run.config.train.epochs, **scores}
            print(f"{name}: IWAE NLL {scores['iwae_nll_nats']:.3f}, -ELBO {scores['neg_elbo_nats']:.3f} nats",
                  flush=True)
    write_result(args.out or f"benchmarks/results/recipe_speed_{args.compare}_{args.precision}.json", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
