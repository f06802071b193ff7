"""The pictures and page a run folder shows a person: samples, reconstructions, interpolations,
traversals, the loss curve, metrics, and an index.html that puts them together."""
from __future__ import annotations

import html
import json
import time
from pathlib import Path

import torch

from vaekit.config import scored_binarized
from vaekit.engine.batches import binarize_once, to_unit
from vaekit.engine.checkpoint import Run
from vaekit.engine.files import atomic_path, staged_folder, write_json, write_text
from vaekit.imaging import save_grid
from vaekit.metrics import evaluate
from vaekit.models.conditional import ConditionalVAE
from vaekit.models.transform import TransformCodec
from vaekit.tasks.generate import interpolate, most_active_dims, traverse
from vaekit.tasks.restore import restoration_examples


def prepare_eval_images(images: torch.Tensor, binarize: bool) -> torch.Tensor:
    """uint8 -> float in [0, 1]; binarized once with the fixed protocol seed when the model is Bernoulli."""
    return binarize_once(images) if binarize else to_unit(images)


def plot_history(history: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(epochs, [h["train_neg_elbo_nats"] for h in history], label="train", marker=".")
    val = [(h["epoch"], h["val_neg_elbo_nats"]) for h in history if h.get("val_neg_elbo_nats") is not None]
    if val:
        ax.plot(*zip(*val), label="validation", marker=".")
    ax.set_xlabel("epoch")
    ax.set_ylabel("negative ELBO (nats per image)")
    ax.set_title("training curve")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def write_report(run: Run, held_out: torch.Tensor, out_dir: str | Path | None = None, seed: int = 0,
                 iwae_k: int = 100, progress: bool = True, split: str = "held-out") -> Path:
    """Write the run's pictures, metrics.json and index.html; `held_out` are uint8 images the
    model did not train on, or, where the run kept none, some it did, with `split` saying so.
    The files arrive together once all are made. Returns the path of index.html."""
    out = Path(out_dir or run.path)
    with staged_folder(out) as staged:
        if isinstance(run.model, TransformCodec):  # a lossy codec: reconstructions and rate per quality level
            codec_report(run, held_out, staged, split)
        else:
            vae_report(run, held_out, staged, seed, iwae_k, progress, split)
    return out / "index.html"


def vae_report(run: Run, held_out: torch.Tensor, out: Path, seed: int, iwae_k: int, progress: bool,
               split: str) -> None:
    model = run.model.eval()
    binarize = scored_binarized(run.config)
    x = to_unit(held_out[:1000])  # pictures show the images as they are; metrics use the protocol's binarization
    g = torch.Generator().manual_seed(seed)
    if isinstance(model, ConditionalVAE):  # it draws images given degraded ones, so show restorations
        files = {"restorations.png": save_grid(out / "restorations.png", restoration_examples(model, x[:16], g),
                                               nrow=16)}
    else:
        files = unconditional_pictures(model, x, g, out)
    x = prepare_eval_images(held_out[:1000], binarize)
    x = x[:affordable_images(model, x, iwae_k)]
    if run.history:
        files["loss.png"] = plot_history(run.history, out / "loss.png")
    metrics = {"split": split, **evaluate(model, x, iwae_k=iwae_k, generator=g, progress=progress)}
    write_json(out / "metrics.json", metrics)
    write_text(out / "index.html", render_html(run, metrics, list(files)))


IWAE_SECONDS = 60  # what the report's metrics may cost, so a slow model's report stays quick
MIN_IWAE_IMAGES = 10  # but never fewer images than this


def affordable_images(model, x: torch.Tensor, iwae_k: int) -> int:
    """How many held-out images the report can score with k-sample IWAE in about IWAE_SECONDS
    (at least MIN_IWAE_IMAGES, at most all): k forward passes per image, timed on a few images."""
    if not iwae_k or len(x) <= MIN_IWAE_IMAGES:
        return len(x)
    timed = x[:50]
    started = time.perf_counter()
    with torch.no_grad():
        model(timed, generator=torch.Generator().manual_seed(0))
    per_image = (time.perf_counter() - started) / len(timed)
    return int(min(len(x), max(MIN_IWAE_IMAGES, IWAE_SECONDS / (iwae_k * per_image))))


def unconditional_pictures(model, x: torch.Tensor, g: torch.Generator, out: Path) -> dict[str, Path]:
    pictures = {
        "samples.png": save_grid(out / "samples.png", model.sample(64, generator=g), nrow=8),
        "reconstructions.png": save_grid(out / "reconstructions.png",
                                         torch.cat([x[:16], model.reconstruct(x[:16])]), nrow=16),
    }
    if len(x) >= 2:  # a pair of held-out images to interpolate between
        pictures["interpolation.png"] = save_grid(out / "interpolation.png", torch.cat(
            [interpolate(model, x[2 * i], x[2 * i + 1], steps=10) for i in range(min(4, len(x) // 2))]), nrow=10)
    dims = most_active_dims(model, x, 8)
    pictures["traversal.png"] = save_grid(out / "traversal.png", traverse(model, dims, steps=9), nrow=9)
    return pictures


def codec_report(run: Run, held_out: torch.Tensor, out: Path, split: str) -> None:
    """metrics.json (estimated bpp and PSNR per quality level on held-out images), the loss curve,
    and held-out images (top row) over their decoded versions at each quality (rows below)."""
    from vaekit.codecs.lossy import estimate

    x = to_unit(held_out[:200])
    levels = [estimate(run.model, x, q) for q in range(run.model.qualities)]
    rows = [x[:12]] + [run.model.reconstruct(x[:12], q) for q in range(run.model.qualities)]
    files = {"reconstructions.png": save_grid(out / "reconstructions.png", torch.cat(rows), nrow=12)}
    if run.history:
        files["loss.png"] = plot_history(run.history, out / "loss.png")
    metrics = {"split": split, "n_images": len(x), "estimated_bpp": [m["bpp"] for m in levels],
               "psnr_db": [m["psnr_db"] for m in levels], "lmbda": list(run.model.lambdas)}
    write_json(out / "metrics.json", metrics)
    write_text(out / "index.html", render_html(run, metrics, list(files)))


CAPTIONS = {
    "samples.png": "Samples from the prior (expected pixel values)",
    "reconstructions.png": "Held-out inputs (top) and their reconstructions (below; a codec: one row per "
                           "quality level, lowest rate first)",
    "interpolation.png": "Linear interpolation between the latent codes of held-out pairs",
    "traversal.png": "Latent traversals: one row per latent dimension (most used first), -2.5 to +2.5",
    "loss.png": "Negative ELBO per epoch",
    "restorations.png": "Held-out images degraded as in training (top), restored at z = 0 (middle), clean (bottom)",
}


def describe(cfg) -> str:
    if cfg.arch in ("factorized", "hyperprior"):
        shortcut = ", DCT shortcut" if cfg.codec_shortcut == "dct" else ""
        return (f"{cfg.arch} transform codec (N={cfg.codec_channels}, M={cfg.codec_latent}{shortcut}), "
                f"{len(cfg.lmbda)} quality levels, lambda {', '.join(f'{v:g}' for v in cfg.lmbda)}")
    return f"{cfg.arch} VAE, {cfg.latent_dim} latent dims, {cfg.likelihood} likelihood"


def render_html(run: Run, metrics: dict, images: list[str]) -> str:
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td></tr>" if isinstance(v, float)
                   else f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in metrics.items())
    figures = "".join(f'<figure><img src="{name}" alt="{name}"><figcaption>{html.escape(CAPTIONS[name])}'
                      f"</figcaption></figure>" for name in images)
    config = html.escape(json.dumps(run.config.to_dict(), indent=2))
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>vaekit run: {html.escape(run.path.name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
figure{{display:inline-block;margin:1em;vertical-align:top}}img{{image-rendering:pixelated;max-width:100%}}
table{{border-collapse:collapse}}td{{border:1px solid #ccc;padding:4px 10px}}</style></head>
<body><h1>vaekit run: {html.escape(run.path.name)}</h1>
<p>{html.escape(describe(run.config.model))}, trained on {html.escape(run.config.data.data)}.</p>
<h2>Metrics ({html.escape(metrics["split"])} images)</h2><table>{rows}</table>
<h2>Pictures</h2>{figures}
<h2>Config</h2><pre>{config}</pre></body></html>
"""
