"""A 2-D map of the latent space coloured by label: the classic figure of a 2-D MNIST VAE, where
each digit class fills its own region. Latents with more than two dims are projected first, by
PCA (linear, fast, distances along its axes are real) or t-SNE (keeps neighbourhoods, slower,
its axes mean nothing).

    coords = project_2d(embed(model, images), method="tsne")   # (N, 2)
    plot_latent_map(coords, labels, "map.png")

Interpolations and traversals are in `vaekit.tasks.generate`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vaekit.engine.files import atomic_path
from vaekit.errors import DataError

METHODS = ("auto", "pca", "tsne")
MAX_LEGEND_CLASSES = 20  # more distinct labels than this get a colour bar instead of a legend


def project_2d(latents: torch.Tensor | np.ndarray, method: str = "auto", seed: int = 0) -> tuple[np.ndarray, str]:
    """(N, D) latents -> ((N, 2) coordinates, the method used). "auto": the latents themselves
    ("identity") when D <= 2, else PCA. One dimension is shown against zero."""
    if method not in METHODS:
        raise DataError(f"unknown projection {method!r}; choose one of {', '.join(METHODS)}")
    seed %= 2**32  # scikit-learn's random_state is 32-bit; vaekit's seeds are torch's 64-bit ones
    z = np.asarray(latents, dtype=np.float64)
    if z.ndim != 2 or len(z) == 0:
        raise DataError("a latent map needs at least one (N, D) latent")
    if method == "auto":
        method = "identity" if z.shape[1] <= 2 else "pca"
    if method == "identity":
        coords = z
    elif method == "pca":
        from sklearn.decomposition import PCA

        coords = PCA(n_components=min(2, *z.shape), random_state=seed).fit_transform(z)
    else:
        if len(z) < 5:
            raise DataError("t-SNE needs at least 5 images; use the pca method")
        from sklearn.manifold import TSNE

        perplexity = min(30.0, (len(z) - 1) / 3)  # t-SNE requires perplexity < N
        coords = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(z)
    if coords.shape[1] == 1:
        coords = np.hstack([coords, np.zeros_like(coords)])
    return coords, method


def plot_latent_map(coords: np.ndarray, labels: np.ndarray | None, path: str | Path, title: str = "",
                    label_name: str = "label", axis_name: str = "z") -> Path:
    """A scatter plot of (N, 2) points, one colour per label (a legend for a few classes, a colour
    bar for many), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 6), dpi=110)
    size = max(1.0, min(12.0, 20000 / max(1, len(coords))))
    if labels is None:
        ax.scatter(coords[:, 0], coords[:, 1], s=size, alpha=0.6, linewidths=0)
    else:
        labels = np.asarray(labels)
        classes = np.unique(labels)
        if len(classes) <= MAX_LEGEND_CLASSES:
            cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
            for i, c in enumerate(classes):
                pts = coords[labels == c]
                ax.scatter(pts[:, 0], pts[:, 1], s=size, alpha=0.6, linewidths=0, color=cmap(i), label=str(c))
            ax.legend(title=label_name, markerscale=max(1.0, 6 / size), loc="best", fontsize="small")
        else:
            points = ax.scatter(coords[:, 0], coords[:, 1], c=labels, s=size, alpha=0.6, linewidths=0,
                                cmap="viridis")
            fig.colorbar(points, ax=ax, label=label_name)
    ax.set_xlabel(f"{axis_name} 1")
    ax.set_ylabel(f"{axis_name} 2")
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
