"""Data-parallel scaling on this machine: the MLP VAE on MNIST trained by `torchrun -m vaekit train`
with 1 and 2 processes (1 thread each, same global batch and seed): images/second and the
per-epoch loss curves side by side.

    python benchmarks/ddp_scaling.py [--epochs 3] [--data-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import default_mnist_dir, machine, write_result


def run(processes: int, args, out: Path) -> list[dict]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
           "-m", "vaekit", "train", "--data", "mnist", "--val-fraction", "0", "--model", "mlp",
           "--hidden-dims", "400", "--latent-dim", "20", "--batch-size", "128", "--lr", "1e-3",
           "--epochs", str(args.epochs), "--threads", "1", "--out", str(out), "--no-report"]
    if args.data_dir:
        cmd[cmd.index("--val-fraction"):cmd.index("--val-fraction")] = ["--data-dir", args.data_dir]
    done = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"torchrun with {processes} process(es) failed:\n{done.stderr[-3000:]}")
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=default_mnist_dir())
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--out", default="benchmarks/results/ddp_scaling.json")
    args = p.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1, 2):
            history = run(n, args, Path(tmp) / f"p{n}")
            steady = history[1:] or history  # the first epoch carries start-up costs
            results[f"{n} process(es)"] = {
                "images_per_second": sum(h["images_per_second"] for h in steady) / len(steady),
                "train_neg_elbo_per_epoch": [h["train_neg_elbo_nats"] for h in history]}
    one, two = results["1 process(es)"], results["2 process(es)"]
    speedup = two["images_per_second"] / one["images_per_second"]
    print(f"{'processes':>10s} {'images/s':>10s}  -ELBO per epoch")
    for name, r in results.items():
        print(f"{name:>10s} {r['images_per_second']:10.0f}  " + " ".join(f"{v:.2f}" for v in r["train_neg_elbo_per_epoch"]))
    print(f"speed-up with 2 processes: {speedup:.2f}x")
    write_result(args.out, {"machine": machine(), "epochs": args.epochs, "results": results, "speedup": speedup})
    return 0


if __name__ == "__main__":
    sys.exit(main())
