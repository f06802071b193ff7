"""Where the MLP VAE's training step (784-400-20, batch 128, binarized MNIST) spends its time, and
the alternatives measured against each part, as ratios in one process (issue 3's peer comparison).

    python benchmarks/mlp_step_parts.py [--threads 1] [--rounds 20]

- matrix multiplies: each of the step's five large products alone, in GFLOP/s against this
  machine's sustained peak;
- first layer on binarized input (about 13% ones): forward and weight gradient as dense products,
  against products over the batch's active pixels only, and against embedding_bag sums over the ones;
- batches: a binarized batch drawn as the trainer did until 2026-12-02 (advanced indexing, one random
  byte per pixel) against now (index_select, 16-bit draws four to a 64-bit word);
- forward + backward: autograd through vaekit's model against a hand-written backward of the same
  one-sample ELBO, checked to give the same gradients.
Alternatives take turns (common.interleaved_step_seconds), so each pair sees the same machine state.
"""
from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F

from common import default_mnist_dir, interleaved_step_seconds, machine, matmul_peak_gflops, write_result

from vaekit.config import Config
from vaekit.data import load_dataset
from vaekit.engine.batches import binarize_uint8
from vaekit.engine.trainer import compute_loss
from vaekit.registry import build_model

BATCH, PIXELS, HIDDEN, LATENT = 128, 784, 400, 20


def old_batch(images, order, g):
    """The trainer's batch before 2026-12-02."""
    x = images[order[:BATCH]]
    return (torch.randint(0, 255, x.shape, dtype=torch.uint8, generator=g) < x).float()


def first_layer(x, w, b, grad_out):
    """Dense: h = x W^T + b and dW = grad_out^T x."""
    return torch.addmm(b, x, w.t()), grad_out.t() @ x


def first_layer_active_pixels(x, w, b, grad_out):
    """The same products over the pixels that are 1 somewhere in the batch (about 490 of 784)."""
    idx = x.any(0).nonzero().squeeze(1)
    xa = x.index_select(1, idx)
    h = torch.addmm(b, xa, w.index_select(1, idx).t())
    return h, torch.zeros_like(w).index_copy_(1, idx, grad_out.t() @ xa)


def first_layer_embedding_bag(x, w, b, grad_out):
    """Sums of W's columns over each image's ones; dW as sums of grad_out's rows over each pixel's images."""
    rows, cols = x.nonzero(as_tuple=True)
    counts = torch.bincount(rows, minlength=len(x))
    h = F.embedding_bag(cols, w.t().contiguous(), counts.cumsum(0) - counts, mode="sum") + b
    cols_t, rows_t = x.t().nonzero(as_tuple=True)
    counts_t = torch.bincount(cols_t, minlength=x.shape[1])
    return h, F.embedding_bag(rows_t, grad_out, counts_t.cumsum(0) - counts_t, mode="sum").t().contiguous()


@torch.no_grad()
def hand_written_step(model, x, eps):
    """-ELBO of vaekit's MLP VAE with a Bernoulli likelihood and its gradients, without autograd."""
    (w1, b1), (w2, b2) = [(m.weight, m.bias) for m in model.encoder.net[::2]]
    (w3, b3), (w4, b4) = [(m.weight, m.bias) for m in model.decoder.net[::2]]
    n = len(x)
    h1 = torch.addmm(b1, x, w1.t()).relu_()
    mean, log_var_raw = torch.addmm(b2, h1, w2.t()).chunk(2, 1)
    log_var = log_var_raw.clamp(-30.0, 20.0)  # as DiagonalGaussian does
    std = (0.5 * log_var).exp_()
    z = torch.addcmul(mean, std, eps)
    h2 = torch.addmm(b3, z, w3.t()).relu_()
    logits = torch.addmm(b4, h2, w4.t())
    loss = (F.softplus(logits).sub_(x * logits).sum() + 0.5 * (mean * mean + std * std - 1 - log_var).sum()) / n
    d_logits = torch.sigmoid(logits).sub_(x).div_(n)
    w4.grad, b4.grad = d_logits.t() @ h2, d_logits.sum(0)
    d_h2 = (d_logits @ w4).mul_(h2 > 0)
    w3.grad, b3.grad = d_h2.t() @ z, d_h2.sum(0)
    d_z = d_h2 @ w3
    d_log_var = (d_z * eps * 0.5 * std + 0.5 * (std * std - 1) / n) * ((log_var_raw > -30) & (log_var_raw < 20))
    d_e = torch.cat([d_z + mean / n, d_log_var], 1)
    w2.grad, b2.grad = d_e.t() @ h1, d_e.sum(0)
    d_h1 = (d_e @ w2).mul_(h1 > 0)
    w1.grad, b1.grad = d_h1.t() @ x, d_h1.sum(0)
    return loss


def check_hand_written(model, x) -> float:
    """Largest difference between the hand-written gradients and autograd's, on the same noise."""
    eps = torch.randn(len(x), LATENT, generator=torch.Generator().manual_seed(1))
    hand_written_step(model, x.flatten(1), eps)
    hand = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    q = model.encode(x)
    z = q.mean + q.std * eps
    (-model.likelihood.log_prob(model.decoder(z), x).mean() + q.kl_per_dim().sum(1).mean()).backward()
    return max((a - p.grad).abs().max().item() for a, p in zip(hand, model.parameters()))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=default_mnist_dir())
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=20, help="timed turns per comparison")
    p.add_argument("--out", default="benchmarks/results/mlp_step_parts.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    images = load_dataset("mnist", "train", data_dir=args.data_dir).images
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(images), generator=g)
    x4 = binarize_uint8(images[order[:BATCH]], g)
    x = x4.flatten(1)
    result = {"machine": machine(), "density": x.mean().item(), "active_pixels": int(x.any(0).sum())}

    peak = matmul_peak_gflops()
    shapes = {"encoder 1 forward": (BATCH, PIXELS, HIDDEN), "encoder 1 weight gradient": (HIDDEN, BATCH, PIXELS),
              "decoder 2 forward": (BATCH, HIDDEN, PIXELS), "decoder 2 input gradient": (BATCH, PIXELS, HIDDEN),
              "decoder 2 weight gradient": (PIXELS, BATCH, HIDDEN)}
    operands = {name: (torch.randn(m, k), torch.randn(k, n)) for name, (m, k, n) in shapes.items()}
    seconds = interleaved_step_seconds({name: lambda a=a, b=b: a @ b for name, (a, b) in operands.items()},
                                       args.rounds, 10)
    result["matmul"] = {"peak_gflops": peak, **{
        name: {"ms": seconds[name] * 1e3, "gflops": 2 * m * k * n / seconds[name] / 1e9}
        for name, (m, k, n) in shapes.items()}}

    w, b = torch.randn(HIDDEN, PIXELS) * 0.05, torch.zeros(HIDDEN)
    grad_out = torch.randn(BATCH, HIDDEN)
    dense = first_layer(x, w, b, grad_out)
    layers = {f.__name__: f for f in (first_layer, first_layer_active_pixels, first_layer_embedding_bag)}
    for f in layers.values():  # each alternative computes the same thing
        h, dw = f(x, w, b, grad_out)
        assert torch.allclose(h, dense[0], atol=1e-4) and torch.allclose(dw, dense[1], atol=1e-4), f.__name__
    seconds = interleaved_step_seconds({n: lambda f=f: f(x, w, b, grad_out) for n, f in layers.items()},
                                       args.rounds, 10)
    result["first_layer_ms"] = {n: s * 1e3 for n, s in seconds.items()}

    seconds = interleaved_step_seconds({
        "before": lambda: old_batch(images, order, g),
        "now": lambda: binarize_uint8(images.index_select(0, order[:BATCH]), g)}, args.rounds, 10)
    result["batch_ms"] = {n: s * 1e3 for n, s in seconds.items()}

    config = Config().replace({"image_shape": (1, 28, 28), "hidden_dims": (HIDDEN,), "latent_dim": LATENT})
    model = build_model(config.model)
    result["hand_written_max_gradient_difference"] = check_hand_written(model, x4)

    def autograd_step():
        terms = compute_loss(model, x4, config, 1.0, g)
        model.zero_grad(set_to_none=True)
        terms.loss.backward()

    seconds = interleaved_step_seconds({
        "autograd": autograd_step,
        "hand_written": lambda: hand_written_step(model, x, torch.randn(BATCH, LATENT, generator=g))},
        args.rounds, 10)
    result["forward_backward_ms"] = {n: s * 1e3 for n, s in seconds.items()}

    print(f"matmul peak {peak:.1f} GFLOP/s; the step's large products: " + ", ".join(
        f"{n} {v['gflops']:.1f}" for n, v in result["matmul"].items() if n != "peak_gflops"))
    for part in ("first_layer_ms", "batch_ms", "forward_backward_ms"):
        print(part, {n: round(v, 3) for n, v in result[part].items()})
    difference = result["hand_written_max_gradient_difference"]
    print(f"hand-written gradients differ from autograd's by at most {difference:.2g}")
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
