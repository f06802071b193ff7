"""Two processes under torchrun (gloo on CPU) train like one process with the same global batch."""
import json
import os
import subprocess
import sys

import torch

from vaekit.engine import checkpoint
from vaekit.engine.trainer import fit
from vaekit.registry import build_model
from conftest import tiny_config

FLAGS = ["--data", "digits", "--limit", "256", "--val-fraction", "0.1", "--latent-dim", "4", "--hidden-dims", "32",
         "--epochs", "3", "--batch-size", "64", "--lr", "3e-3", "--threads", "1", "--seed", "0"]


def test_two_processes_match_one_process(tmp_path):
    single = fit(tiny_config(epochs=3, threads=1), tmp_path / "single", progress=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "vaekit", "train", *FLAGS, "--out", str(tmp_path / "ddp"), "--no-report"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    history = [json.loads(line) for line in (tmp_path / "ddp/metrics.jsonl").read_text().splitlines()]
    assert [h["processes"] for h in history] == [2, 2, 2]
    assert history[-1]["step"] == single.history[-1]["step"]  # same number of global steps
    for a, b in zip(history, single.history):  # same data and global batch; only the sampling noise differs
        assert abs(a["train_neg_elbo_nats"] - b["train_neg_elbo_nats"]) < 0.02 * b["train_neg_elbo_nats"]

    torch.manual_seed(0)
    init = build_model(single.config.model).state_dict()
    ddp = checkpoint.load_weights(tmp_path / "ddp/checkpoint/model.safetensors")
    one = checkpoint.load_weights(tmp_path / "single/checkpoint/model.safetensors")
    moved = sum((one[k] - init[k]).norm() ** 2 for k in one) ** 0.5
    apart = sum((one[k] - ddp[k]).norm() ** 2 for k in one) ** 0.5
    assert apart < 0.1 * moved, (apart, moved)  # measured: about 0.03


def test_batch_must_split_evenly(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "vaekit", "train", *FLAGS[:-6], "--batch-size", "63", "--out", str(tmp_path / "x")]
    done = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode != 0
    assert "batch_size (63) must be divisible by the 2 processes" in done.stderr
