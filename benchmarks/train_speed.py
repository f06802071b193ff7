"""Training throughput of vaekit's trainer against the tutorial loop on the classic MLP VAE.

    python benchmarks/train_speed.py [--threads 1] [--epochs 2] [--out benchmarks/results/train_speed.json]

Both train the same 784-400-20 model on the same MNIST tensor with batch 128 and Adam(W) 1e-3,
in this process, at the same thread count. Also prints the fraction of this machine's
matrix-multiply peak that each training step reaches (about 3.3 MFLOP per image).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile

import torch

from common import default_mnist_dir, machine, matmul_peak_gflops, train_example, write_result

from vaekit.config import Config
from vaekit.data import load_dataset
from vaekit.engine.trainer import TrainData, fit

FLOP_PER_IMAGE = 3.3e6  # forward + backward of 784-400-20-400-784: 3 * 2 * (784*400*2 + 400*20*3)


def vaekit_speed(images_u8: torch.Tensor, epochs: int, threads: int) -> float:
    config = Config.from_dict({"data": {"data": "mnist", "val_fraction": 0},
                               "model": {"arch": "mlp", "hidden_dims": [400], "latent_dim": 20},
                               "train": {"epochs": epochs, "batch_size": 128, "lr": 1e-3, "threads": threads}})
    with tempfile.TemporaryDirectory() as out:
        run = fit(config, out, progress=False, data=TrainData(images_u8, images_u8[:0], binarize=True))
    seconds = sum(h["seconds"] for h in run.history)
    return epochs * len(images_u8) / seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=default_mnist_dir())
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--epochs", type=int, default=1, help="epochs per timed run")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each loop, interleaved; medians reported")
    p.add_argument("--out", default="benchmarks/results/train_speed.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    images = load_dataset("mnist", "train", data_dir=args.data_dir).images
    peak = {"fp32": matmul_peak_gflops(torch.float32),
            "bf16": matmul_peak_gflops(torch.bfloat16, n=256, reps=3)}  # small: bf16 is emulated on AVX2 CPUs
    runs = {"tutorial loop (DataLoader)": [], "vaekit": []}
    for _ in range(args.repeats):  # interleaved, so a slow spell of the machine hits both
        runs["tutorial loop (DataLoader)"].append(train_example(images.float() / 255, args.epochs, binarize=True)[1])
        runs["vaekit"].append(vaekit_speed(images, args.epochs, args.threads))
    rows = {k: statistics.median(v) for k, v in runs.items()}
    tutorial = rows["tutorial loop (DataLoader)"]
    result = {"machine": machine(), "epochs": args.epochs, "repeats": args.repeats, "matmul_peak_gflops": peak,
              "all_runs_images_per_second": runs,
              "images_per_second": rows, "ratio_vs_tutorial": {k: v / tutorial for k, v in rows.items()},
              "fraction_of_fp32_peak": {k: v * FLOP_PER_IMAGE / (peak["fp32"] * 1e9) for k, v in rows.items()}}
    print(f"threads {args.threads}; matmul peak fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s")
    print(f"{'loop':30s} {'images/s':>10s} {'ratio':>7s} {'of fp32 peak':>13s}")
    for k, v in rows.items():
        print(f"{k:30s} {v:10.0f} {v / tutorial:7.2f} {result['fraction_of_fp32_peak'][k]:13.1%}")
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
