"""Retrieval on MNIST: each test image queries an index of the 60,000 training images; precision@10
(the share of the 10 nearest with the query's label) and 10-NN classification accuracy (majority
vote, ties to the nearest), for a VAE's posterior means against raw pixels and PCA of the same
dimension, all with the same exact Euclidean search. Also the FAISS HNSW backend's recall@10
against exact search and both search times, when faiss is installed.

    python benchmarks/retrieval.py [--data-dir DIR] [--epochs 12] [--threads 2]
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time

import torch

from common import default_mnist_dir, machine, write_result

from vaekit.config import Config
from vaekit.data import load_dataset
from vaekit.engine.batches import to_unit
from vaekit.engine.trainer import TrainData, fit
from vaekit.tasks.retrieve import BACKENDS, embed, exact_search

K = 10
VAE = {"data": {"data": "mnist", "val_fraction": 0},
       "model": {"arch": "mlp", "hidden_dims": [512, 256], "latent_dim": 32, "likelihood": "bernoulli"},
       "train": {"batch_size": 128, "lr": 1e-3, "lr_schedule": "cosine", "ema_decay": 0.999}}


def neighbour_metrics(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                      test_labels: torch.Tensor) -> dict:
    started = time.perf_counter()
    _, idx = exact_search(train_features, test_features, K)
    seconds = time.perf_counter() - started
    return {**label_metrics(train_labels[idx], test_labels), "search_seconds": seconds}


def label_metrics(neighbour_labels: torch.Tensor, test_labels: torch.Tensor) -> dict:
    """precision@K and K-NN accuracy from the (Q, K) labels of the neighbours, nearest first."""
    votes = torch.zeros(len(neighbour_labels), 10).scatter_add_(1, neighbour_labels, torch.ones_like(
        neighbour_labels, dtype=torch.float))
    nearest_bonus = torch.zeros_like(votes).scatter_reduce_(
        1, neighbour_labels, (1 - torch.arange(K) / K).expand_as(neighbour_labels), "amax")
    predicted = (votes + 1e-3 * nearest_bonus).argmax(1)  # ties go to the class seen nearest
    return {"precision_at_10": (neighbour_labels == test_labels[:, None]).float().mean().item(),
            "knn_accuracy": (predicted == test_labels).float().mean().item()}


def approximate_search(train: torch.Tensor, test: torch.Tensor) -> dict | None:
    """recall@10 of the FAISS HNSW backend against exact search on the same latents."""
    if importlib.util.find_spec("faiss") is None:
        return None
    started = time.perf_counter()
    backend = BACKENDS["faiss-hnsw"].build(train)
    built = time.perf_counter() - started
    started = time.perf_counter()
    _, approx = backend.search(test, K)
    searched = time.perf_counter() - started
    _, exact = exact_search(train, test, K)
    recall = sum(len(set(a) & set(e)) for a, e in zip(approx.tolist(), exact.tolist())) / exact.numel()
    return {"recall_at_10": recall, "build_seconds": built, "search_seconds": searched}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=default_mnist_dir())
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--latent-dim", type=int, default=VAE["model"]["latent_dim"])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--out", default="benchmarks/results/retrieval.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    train, test = (load_dataset("mnist", split, data_dir=args.data_dir) for split in ("train", "test"))
    config = Config.from_dict(VAE).replace({"epochs": args.epochs, "latent_dim": args.latent_dim,
                                            "threads": args.threads})
    with tempfile.TemporaryDirectory() as out:
        run = fit(config, out, data=TrainData(train.images, train.images[:0], binarize=True), progress=False)
    print(f"trained in {sum(h['seconds'] for h in run.history):.0f} s", flush=True)
    started = time.perf_counter()
    z_train, z_test = embed(run.model, train.images), embed(run.model, test.images)
    embed_seconds = time.perf_counter() - started

    x_train, x_test = to_unit(train.images).flatten(1), to_unit(test.images).flatten(1)
    mean = x_train.mean(0)
    basis = torch.linalg.svd(x_train - mean, full_matrices=False).Vh[:args.latent_dim].T  # (784, D)
    spaces = {"vae latent (posterior mean)": (z_train, z_test), "raw pixels (784)": (x_train, x_test),
              f"pca ({args.latent_dim})": ((x_train - mean) @ basis, (x_test - mean) @ basis)}
    results = {}
    for name, (a, b) in spaces.items():
        results[name] = neighbour_metrics(a, train.labels, b, test.labels)
        print(f"{name:32s} precision@10 {results[name]['precision_at_10']:.4f}  "
              f"10-NN accuracy {results[name]['knn_accuracy']:.4f}  "
              f"(search {results[name]['search_seconds']:.1f} s)", flush=True)
    faiss_result = approximate_search(z_train, z_test)
    if faiss_result:
        print(f"faiss-hnsw on the latents: recall@10 {faiss_result['recall_at_10']:.4f}, "
              f"search {faiss_result['search_seconds']:.2f} s")
    write_result(args.out, {"machine": machine(), "k": K, "queries": len(test), "index_size": len(train),
                            "train_seconds": sum(h["seconds"] for h in run.history),
                            "train_neg_elbo_nats": run.history[-1]["train_neg_elbo_nats"],
                            "embed_seconds": embed_seconds, "vae_config": config.to_dict(),
                            "results": results, "faiss_hnsw": faiss_result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
