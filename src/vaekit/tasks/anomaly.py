"""Anomaly detection: a VAE trained on normal images gives unusual images a low likelihood.

    scores = anomaly_scores(model, images, score="iwae", k=100)   # (N,) nats, higher = more unusual
    threshold = calibrate_threshold(anomaly_scores(model, normal_held_out), fpr=0.05)
    flagged = scores > threshold

Three scores, all in nats per image:
  elbo   negative ELBO, -E_q[log p(x, z) - log q(z | x)], averaged over k posterior samples
  iwae   importance-weighted NLL, -log (1/k) sum_i p(x, z_i) / q(z_i | x) (Burda et al. 2016):
         a tighter estimate of -log p(x), the score closest to the model's actual likelihood
  recon  -log p(x | z = posterior mean): reconstruction error alone, blind to how unusual the
         latent code is (for a fixed-variance Gaussian likelihood, a scaled squared error)
The threshold is a quantile of the scores of held-out normal images, so about `fpr` of normal
images are flagged, whatever the score's scale.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from vaekit.engine.batches import to_unit
from vaekit.engine.files import atomic_dir
from vaekit.errors import DataError
from vaekit.imaging import save_grid
from vaekit.losses import elbo_estimate, iwae_bound
from vaekit.models.vae import VAE

SCORES = ("elbo", "iwae", "recon")
SUMMARY_FILE = "summary.json"


@torch.no_grad()
def score_batch(model: VAE, x: torch.Tensor, score: str, k: int, generator: torch.Generator | None,
                on_chunk: Callable[[int], None] | None = None) -> torch.Tensor:
    """Anomaly scores of images x (B, C, H, W) in [0, 1]: (B,) nats. `on_chunk` gets the number of
    image-samples in each chunk as it is drawn (one per image for `recon`)."""
    if score == "recon":
        posterior = model.encode(x)
        scores = -model.likelihood.log_prob(model.decoder(posterior.mean), x)
        if on_chunk is not None:
            on_chunk(len(x))
        return scores
    if score == "elbo":
        return -elbo_estimate(model, x, k, generator, on_chunk=on_chunk)
    if score == "iwae":
        return -iwae_bound(model, x, k, generator, on_chunk=on_chunk)
    raise DataError(f"unknown anomaly score {score!r}; choose one of {', '.join(SCORES)}")


@torch.no_grad()
def anomaly_scores(model: VAE, images: torch.Tensor, score: str = "iwae", k: int = 100, batch_size: int = 250,
                   seed: int = 0, progress: bool = False) -> np.ndarray:
    """Scores of uint8 or [0, 1] float images (N, C, H, W): float64 (N,) nats, higher = more anomalous.
    Grey levels are scored as they are (no binarization), so only the posterior samples are random,
    and those come from `seed`."""
    if score not in SCORES:
        raise DataError(f"unknown anomaly score {score!r}; choose one of {', '.join(SCORES)}")
    if k < 1:
        raise DataError(f"the number of posterior samples must be at least 1, got {k}")
    model.check_images(images)
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    out = []
    samples = 1 if score == "recon" else k
    # counted in posterior samples (images x k), moving chunk by chunk: one batch of a deep model can take minutes
    with tqdm(total=len(images) * samples, desc=f"scoring ({score})", unit="sample", unit_scale=True,
              disable=not progress, leave=False) as bar:
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size]
            x = to_unit(x) if x.dtype == torch.uint8 else x.float()
            scores = score_batch(model, x, score, k, generator, on_chunk=bar.update)
            out.append(scores.double())
    return torch.cat(out).numpy() if out else np.zeros(0)


def calibrate_threshold(normal_scores: np.ndarray, fpr: float) -> float:
    """The score above which at most `fpr` of the held-out normal images lie: an image is flagged
    when its score is strictly greater. More normal images give a finer threshold (at least
    1 / fpr of them for the target to mean anything)."""
    if not 0 < fpr < 1:
        raise DataError(f"the target false-positive rate must lie strictly between 0 and 1, got {fpr}")
    if len(normal_scores) == 0:
        raise DataError("calibrating a threshold needs at least one held-out normal image")
    return float(np.quantile(np.asarray(normal_scores, dtype=np.float64), 1 - fpr, method="higher"))


def check_report_folder(out_dir: Path) -> None:
    """A report replaces only an earlier report: refuse a folder holding anything else."""
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and
                                                       not (out_dir / SUMMARY_FILE).is_file())):
        raise DataError(f"{out_dir} exists and is not an anomaly report; choose a new folder for the report")


def write_report(out_dir: str | Path, scores: np.ndarray, normal_scores: np.ndarray, threshold: float,
                 images: torch.Tensor, items: list[str], labels: list, settings: dict, top: int = 64) -> dict:
    """Write scores.csv, histogram.png, most_anomalous.png and summary.json into `out_dir`
    (replaced atomically as a whole); returns the summary."""
    out_dir = Path(out_dir)
    check_report_folder(out_dir)
    flagged = scores > threshold
    order = np.argsort(-scores, kind="stable")
    summary = {**settings, "threshold_nats": threshold, "n_images": int(len(scores)),
               "n_flagged": int(flagged.sum()), "n_normal": int(len(normal_scores)),
               "normal_fpr": float((normal_scores > threshold).mean()),
               "most_anomalous": [{"item": items[i], "score_nats": float(scores[i])} for i in order[:10]]}
    with atomic_dir(out_dir) as tmp:
        (tmp / "scores.csv").write_text(scores_csv(scores, flagged, items, labels))
        plot_histogram(scores, normal_scores, threshold, settings.get("score", "score"), tmp / "histogram.png")
        worst = torch.from_numpy(order[:top].copy())
        if len(worst):
            x = images[worst]
            save_grid(tmp / "most_anomalous.png", to_unit(x) if x.dtype == torch.uint8 else x)
        (tmp / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def scores_csv(scores: np.ndarray, flagged: np.ndarray, items: list[str], labels: list) -> str:
    """One row per image in input order: item, label, score_nats, anomalous (0/1), rank (1 = most)."""
    rank = np.empty(len(scores), dtype=np.int64)
    rank[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["item", "label", "score_nats", "anomalous", "rank"])
    for i in range(len(scores)):
        label = labels[i] if labels[i] is None or isinstance(labels[i], int) else " ".join(map(str, labels[i]))
        writer.writerow([items[i], "" if label is None else label, f"{scores[i]:.4f}", int(flagged[i]), rank[i]])
    return buffer.getvalue()


def plot_histogram(scores: np.ndarray, normal_scores: np.ndarray, threshold: float, score: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    both = np.concatenate([scores, normal_scores])
    bins = np.linspace(both.min(), both.max(), 60) if len(both) and both.min() < both.max() else 30
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.hist(normal_scores, bins=bins, alpha=0.6, density=True, label=f"held-out normal ({len(normal_scores)})")
    ax.hist(scores, bins=bins, alpha=0.6, density=True, label=f"scored images ({len(scores)})")
    ax.axvline(threshold, color="k", linestyle="--", label=f"threshold {threshold:.1f}")
    ax.set_xlabel(f"anomaly score: {score} (nats per image)")
    ax.set_ylabel("density")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
