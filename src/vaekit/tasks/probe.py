"""How much label information the latent code holds, measured by simple classifiers on it: a
linear probe (logistic regression on standardised posterior means) and k-nearest neighbours.
The VAE never saw the labels, so this measures the representation, not the classifier.

    result = probe(embed(model, train.images), train.labels, embed(model, test.images), test.labels)
    # {"linear_accuracy": 0.93, "knn_accuracy": 0.97, ...}; (N, F) factor labels give one entry per factor
"""
from __future__ import annotations

import numpy as np
import torch

from vaekit.errors import DataError


def probe(train_latents: torch.Tensor | np.ndarray, train_labels: torch.Tensor | np.ndarray,
          test_latents: torch.Tensor | np.ndarray, test_labels: torch.Tensor | np.ndarray, k: int = 10,
          factor_names: tuple[str, ...] | None = None, max_iter: int = 1000) -> dict:
    """Fit both classifiers on the train latents, report test accuracy. Labels (N,) give one
    result; (N, F) factor labels give one per factor (named by `factor_names`)."""
    ztr, zte = (np.asarray(z, dtype=np.float64) for z in (train_latents, test_latents))
    ytr, yte = (np.asarray(y) for y in (train_labels, test_labels))
    if ztr.ndim != 2 or zte.ndim != 2 or ztr.shape[1] != zte.shape[1]:
        raise DataError(f"the probe needs (N, D) latents of the same width, got {ztr.shape} and {zte.shape}")
    if len(ytr) != len(ztr) or len(yte) != len(zte):
        raise DataError("the probe needs one label per latent")
    if ytr.ndim == 2:
        names = factor_names or tuple(f"factor{i}" for i in range(ytr.shape[1]))
        return {"per_factor": {name: probe(ztr, ytr[:, i], zte, yte[:, i], k, max_iter=max_iter)
                               for i, name in enumerate(names)}}
    if len(np.unique(ytr)) < 2:
        raise DataError("the probe needs at least two classes among the training labels")
    if not 1 <= k <= len(ztr):
        raise DataError(f"k must lie in 1..{len(ztr)} (the number of training latents), got {k}")
    return {"linear_accuracy": _linear(ztr, ytr, zte, yte, max_iter), "knn_accuracy": _knn(ztr, ytr, zte, yte, k),
            "k": k, "n_train": len(ztr), "n_test": len(zte)}


def _linear(ztr, ytr, zte, yte, max_iter: int) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    return float(model.fit(ztr, ytr).score(zte, yte))


def _knn(ztr, ytr, zte, yte, k: int) -> float:
    """Euclidean distance on the latents as they are: the geometry `vaekit search` uses."""
    from sklearn.neighbors import KNeighborsClassifier

    return float(KNeighborsClassifier(n_neighbors=k).fit(ztr, ytr).score(zte, yte))
