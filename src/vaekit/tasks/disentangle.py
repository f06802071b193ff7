"""Disentanglement against known factors of variation: the Mutual Information Gap (MIG).

MIG (Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs"): for each factor v_k,
the gap between the two latent dims that share the most information with it, normalised by the
factor's entropy, averaged over factors:

    MIG = 1/K sum_k (I(z_j*; v_k) - max_{j != j*} I(z_j; v_k)) / H(v_k)

1 when every factor lives in exactly one latent dim, 0 when each factor is spread evenly. Each
latent dim (posterior mean) is discretised into equal-width bins first, as in
disentanglement_lib (Locatello et al. 2019), so the mutual information is a plug-in estimate
from counts.

    result = mig(embed(model, sprites.images), sprites.labels, sprites.factor_names)
"""
from __future__ import annotations

import numpy as np
import torch

from vaekit.errors import DataError

BINS = 20  # disentanglement_lib's default


def discretize(latents: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Each column of (N, D) into `bins` equal-width bins over its own range: int (N, D)."""
    codes = np.zeros(latents.shape, dtype=np.int64)
    for j in range(latents.shape[1]):
        edges = np.histogram_bin_edges(latents[:, j], bins)
        codes[:, j] = np.digitize(latents[:, j], edges[1:-1])
    return codes


def mutual_information(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """I(code_j; factor_k) in nats for every pair: (D, K)."""
    from sklearn.metrics import mutual_info_score

    return np.array([[mutual_info_score(factors[:, k], codes[:, j]) for k in range(factors.shape[1])]
                     for j in range(codes.shape[1])])


def mig(latents: torch.Tensor | np.ndarray, factors: torch.Tensor | np.ndarray,
        factor_names: tuple[str, ...] | None = None, bins: int = BINS) -> dict:
    """MIG of (N, D) latents against (N, K) integer factor labels: {"mig", "per_factor" (gap per
    factor), "best_dims" (the dim that holds each factor), "mutual_information_nats" (D x K)}.
    Factors that never vary carry no information and are left out."""
    z = np.asarray(latents, dtype=np.float64)
    v = np.asarray(factors)
    if v.ndim == 1:
        v = v[:, None]
    if z.ndim != 2 or len(z) != len(v):
        raise DataError(f"MIG needs (N, D) latents and (N, K) factors for the same N, got {z.shape} and {v.shape}")
    if z.shape[1] < 2:
        raise DataError("MIG compares latent dims, so it needs at least two")
    names = list(factor_names or (f"factor{k}" for k in range(v.shape[1])))
    mi = mutual_information(discretize(z, bins), v)  # (D, K)
    entropy = np.array([_entropy(v[:, k]) for k in range(v.shape[1])])
    top = np.sort(mi, axis=0)[::-1]  # descending over dims
    varying = entropy > 0
    if not varying.any():
        raise DataError("MIG needs at least one factor that varies over the images")
    gaps = (top[0] - top[1])[varying] / entropy[varying]
    kept = [n for n, keep in zip(names, varying) if keep]
    return {"mig": float(gaps.mean()), "per_factor": dict(zip(kept, gaps.tolist())),
            "best_dims": dict(zip(kept, mi.argmax(0)[varying].tolist())),
            "mutual_information_nats": mi.tolist(), "factor_entropy_nats": dict(zip(names, entropy.tolist())),
            "bins": bins}


def _entropy(values: np.ndarray) -> float:
    _, counts = np.unique(values, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())
