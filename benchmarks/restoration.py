"""Restoration on MNIST: vaekit against classical baselines on the same test inputs, mean per-image
PSNR in dB (pixels in [0, 1], peak 1).

    python benchmarks/restoration.py [--data-dir DIR] [--runs DIR] [--tasks x4,hole,noise] [--limit N]
                                     [--bm3d-limit 300]

Protocols:
- hole: the centre 14x14 square hidden; PSNR inside the hole only. Baselines: zero fill and
  biharmonic inpainting (scikit-image). vaekit (tasks.inpaint): a conditional VAE
  (--condition occlusion, trained on the centre 14x14 hole, beta 5), the hole filled with the mean
  of 128 draws given the visible pixels; and a VAE trained with the occlusion mechanism (random
  14x14 blocks anywhere), the hole filled with the importance-sampled posterior mean.
- noise: x + N(0, 0.5^2), clipped to [0, 1]. Baselines: the noisy input, median 3x3, non-local
  means (scikit-image) and BM3D (the `bm3d` package), their strength tuned on training images.
  vaekit: a conditional VAE (--condition noise) and a denoising VAE (the noise mechanism), the
  latter decoding its encoder's posterior mean, or importance-sampling the posterior given sigma.
- x4: 28 -> 7 by 4x4 averaging. Baseline: bicubic. vaekit: a conditional VAE (--condition downscale).
Degraded inputs are quantized to 8 bits, as files would hold them, and are the same for every
method. Models are trained here on the 60,000 training images (or loaded from --runs DIR/<name>
when there), and the pictures (degraded | baseline | vaekit | ground truth) go to benchmarks/results/.
Needs scikit-image, scipy and bm3d (`pip install scikit-image bm3d`).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common import REPO, default_mnist_dir, earlier, machine, write_result

import vaekit
from vaekit.config import Config
from vaekit.data import load_dataset
from vaekit.engine.batches import to_unit
from vaekit.engine.trainer import TrainData, fit
from vaekit.imaging import save_grid
from vaekit.models.conditions import quantize_8bit
from vaekit.tasks.inpaint import box_mask, inpaint
from vaekit.tasks.restore import denoise, upscale

SIGMA = 0.5
BASE = {"data": {"data": "mnist", "val_fraction": 0, "binarize": False},
        "train": {"batch_size": 128, "lr": 2e-3, "lr_schedule": "cosine", "seed": 0}}
MODELS = {  # name: (model config, training overrides)
    "inpaint": ({"arch": "mlp", "hidden_dims": [512, 512], "latent_dim": 32},
                {"occlusion": "blocks", "occlusion_fraction": 0.25, "epochs": 8}),
    # trained on the benchmark's own hole (Context Encoders' "central region" protocol); beta = 5 keeps
    # z from carrying what the visible pixels already say (beta = 1: 10.8 dB on the first 2,000 images)
    "inpaint-cvae": ({"arch": "mlp", "hidden_dims": [1024, 1024], "latent_dim": 16, "condition": "occlusion",
                      "condition_mask": "centre", "condition_mask_fraction": 0.25}, {"epochs": 20, "beta": 5.0}),
    "denoise-cvae": ({"arch": "mlp", "hidden_dims": [1024, 1024], "latent_dim": 16, "condition": "noise",
                      "condition_noise_sigma": SIGMA}, {"epochs": 12}),
    "denoise-dvae": ({"arch": "mlp", "hidden_dims": [512, 512], "latent_dim": 32},
                     {"noise": "gaussian", "noise_level": SIGMA, "epochs": 8}),
    "upscale-cvae": ({"arch": "mlp", "hidden_dims": [512, 512], "latent_dim": 16, "condition": "downscale",
                      "condition_scale": 4}, {"epochs": 8}),
}


def get_run(name: str, train: torch.Tensor, runs: Path, epochs_scale: float) -> tuple[vaekit.Run, float]:
    """The trained model `name` and its training seconds: loaded from runs/name, else trained there."""
    model, train_overrides = MODELS[name]
    path = runs / name
    if not (path / "checkpoint").exists():
        config = Config.from_dict({**BASE, "model": model}).replace(train_overrides)
        config = config.replace({"epochs": max(1, round(config.train.epochs * epochs_scale))})
        print(f"training {name} ({config.train.epochs} epochs) ...", flush=True)
        fit(config, path, data=TrainData(train, train[:0], binarize=False), progress=False)
    run = vaekit.load(path)
    return run, sum(h["seconds"] for h in run.history)


def psnr_db(estimate: torch.Tensor, truth: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image PSNR (B,), over `region` (B or 1, 1, H, W; 1 = counted) when given."""
    err = (estimate.clamp(0, 1) - truth) ** 2
    if region is None:
        mse = err.flatten(1).mean(1)
    else:
        region = region.expand_as(err)
        mse = (err * region).flatten(1).sum(1) / region.flatten(1).sum(1)
    return 10 * torch.log10(1 / mse.clamp(min=1e-10))


def per_image(fn, images: torch.Tensor) -> torch.Tensor:
    """A numpy (H, W) -> (H, W) method over grey images (B, 1, H, W)."""
    return torch.stack([torch.from_numpy(np.asarray(fn(x[0].numpy()), dtype=np.float32))[None] for x in images])


def batched(fn, images: torch.Tensor, size: int = 500) -> torch.Tensor:
    return torch.cat([fn(images[i:i + size]) for i in range(0, len(images), size)])


def tune(method, candidates, degrade, clean: torch.Tensor) -> float:
    """The candidate parameter with the best mean PSNR on `clean` training images."""
    noisy = degrade(clean)
    scores = {c: psnr_db(per_image(lambda x: method(x, c), noisy), clean).mean().item() for c in candidates}
    return max(scores, key=scores.get)


def hole_task(runs, test, seed) -> tuple[dict, list]:
    from skimage.restoration import inpaint_biharmonic

    mask = box_mask(28, 28, (7, 7, 14, 14))[None]  # (1, 1, 28, 28), 1 = hidden
    degraded = test * (1 - mask)
    g = torch.Generator().manual_seed(seed)
    filled = {name: batched(lambda x: inpaint(runs[key].model, x, mask, proposals=128, generator=g).mean, test, 250)
              for key, name in (("cvae", "vaekit (conditional VAE)"), ("vae", "vaekit (occlusion VAE)"))}
    biharmonic = per_image(lambda x: inpaint_biharmonic(x, mask[0, 0].bool().numpy()), degraded)
    results = {"zero fill": degraded, "biharmonic (scikit-image)": biharmonic, **filled}
    picture = [degraded, biharmonic, filled["vaekit (conditional VAE)"], test]
    return {k: psnr_db(v, test, mask) for k, v in results.items()}, picture


def noise_task(runs, test, train_clean, seed, bm3d_limit) -> tuple[dict, list]:
    import bm3d
    from scipy.ndimage import median_filter
    from skimage.restoration import denoise_nl_means

    def degrade(x, s=seed):
        return quantize_8bit(x + SIGMA * torch.randn(x.shape, generator=torch.Generator().manual_seed(s)))

    noisy = degrade(test)
    nlm = lambda x, h: denoise_nl_means(x, h=h, patch_size=5, patch_distance=6)  # noqa: E731
    h = tune(nlm, [0.15, 0.2, 0.25, 0.3, 0.4], lambda x: degrade(x, seed + 1), train_clean[:200])
    bm3d_sigma = tune(lambda x, s: bm3d.bm3d(x, s), [0.2, 0.3, 0.4, 0.5], lambda x: degrade(x, seed + 1),
                      train_clean[:20])
    results = {"noisy input": noisy,
               "median 3x3": torch.from_numpy(median_filter(noisy.numpy(), size=(1, 1, 3, 3), mode="reflect")),
               f"non-local means (h={h})": per_image(lambda x: nlm(x, h), noisy)}
    g = torch.Generator().manual_seed(seed)
    results["vaekit (conditional VAE)"] = batched(lambda x: denoise(runs["cvae"].model, x, SIGMA), noisy)
    results["vaekit (denoising VAE, encoder)"] = batched(lambda x: denoise(runs["dvae"].model, x), noisy)
    results["vaekit (denoising VAE, posterior given sigma)"] = batched(
        lambda x: denoise(runs["dvae"].model, x, SIGMA, generator=g), noisy, 250)
    scores = {k: psnr_db(v, test) for k, v in results.items()}
    subset = slice(0, bm3d_limit)
    bm3d_out = per_image(lambda x: bm3d.bm3d(x, bm3d_sigma), noisy[subset])
    scores[f"BM3D (sigma_psd={bm3d_sigma}), first {len(bm3d_out)}"] = psnr_db(bm3d_out, test[subset])
    for name in list(results):
        scores[f"{name}, first {len(bm3d_out)}"] = scores[name][subset]
    best_vaekit = max((k for k in results if k.startswith("vaekit")), key=lambda k: scores[k].mean())
    picture = [noisy[:len(bm3d_out)], bm3d_out, results[best_vaekit][:len(bm3d_out)], test[:len(bm3d_out)]]
    return scores, picture


def upscale_task(run, test) -> tuple[dict, list]:
    low = quantize_8bit(F.avg_pool2d(test, 4))
    bicubic = F.interpolate(low, size=(28, 28), mode="bicubic", align_corners=False).clamp(0, 1)
    vaekit_high = batched(lambda x: upscale(run.model, x, 4), low)
    shown = F.interpolate(low, size=(28, 28), mode="nearest")
    results = {"bicubic": bicubic, "vaekit (conditional VAE)": vaekit_high}
    return {k: psnr_db(v, test) for k, v in results.items()}, [shown, bicubic, vaekit_high, test]


def save_picture(path: Path, columns: list[torch.Tensor], rows: int = 8) -> None:
    """One row per test image: the columns side by side."""
    save_grid(path, torch.stack([c[:rows] for c in columns], 1).flatten(0, 1), nrow=len(columns))
    print(f"wrote {path}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=default_mnist_dir())
    p.add_argument("--runs", default="runs/restoration-bench", help="where the models are trained or found")
    p.add_argument("--limit", type=int, help="only the first N test images (default: all 10,000)")
    p.add_argument("--bm3d-limit", type=int, default=300, help="test images BM3D runs on (about 1 s each)")
    p.add_argument("--epochs-scale", type=float, default=1.0, help="multiply every model's epochs (quick runs)")
    p.add_argument("--train-limit", type=int, help="train on the first N training images only (quick runs)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tasks", default="x4,hole,noise", help="comma-separated: x4, hole, noise")
    p.add_argument("--out", default="benchmarks/results/restoration.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    runs = Path(args.runs)
    train = load_dataset("mnist", "train", data_dir=args.data_dir).images[:args.train_limit]
    test = to_unit(load_dataset("mnist", "test", data_dir=args.data_dir).images[:args.limit])
    train_unit = to_unit(train)
    tasks = {  # name: (title, models it needs, picture file, evaluation)
        "x4": ("x4 super-resolution (28 -> 7 by 4x4 averaging)", ["upscale-cvae"], "restoration_upscale.png",
               lambda r: upscale_task(r["upscale-cvae"], test)),
        "hole": ("centre 14x14 hole (PSNR inside the hole)", ["inpaint-cvae", "inpaint"], "restoration_inpaint.png",
                 lambda r: hole_task({"cvae": r["inpaint-cvae"], "vae": r["inpaint"]}, test, args.seed)),
        "noise": (f"Gaussian noise sigma={SIGMA} (clipped)", ["denoise-cvae", "denoise-dvae"],
                  "restoration_denoise.png",
                  lambda r: noise_task({"cvae": r["denoise-cvae"], "dvae": r["denoise-dvae"]}, test, train_unit,
                                       args.seed, args.bm3d_limit)),
    }
    trained, measured = {}, {}
    for key in args.tasks.split(","):
        title, names, picture_file, evaluate = tasks[key]
        for name in (n for n in names if n not in trained):
            trained[name] = get_run(name, train, runs, args.epochs_scale)
        started = time.perf_counter()
        scores, picture = evaluate({name: trained[name][0] for name in names})
        measured[title] = (scores, time.perf_counter() - started)
        save_picture(REPO / "benchmarks" / "results" / picture_file, picture)

    table = {}
    for task, (scores, seconds) in measured.items():
        print(f"\n{task} ({seconds:.0f} s to evaluate)")
        table[task] = {"evaluate_seconds": seconds, "methods": {}}
        for method, values in scores.items():
            table[task]["methods"][method] = {"psnr_db": values.mean().item(), "n_images": len(values)}
            print(f"  {method:<52} {values.mean().item():6.2f} dB  (n={len(values)})")
    result = {"machine": machine(), "n_test_images": len(test), "seed": args.seed,
              "train_seconds": {name: seconds for name, (_, seconds) in trained.items()},
              "configs": {name: run.config.to_dict() for name, (run, _) in trained.items()}, "tasks": table}
    write_result(args.out, merged(Path(args.out), result))
    return 0


def merged(path: Path, result: dict) -> dict:
    """`result` over the file's earlier one, task by task and model by model, so that a run of some
    --tasks keeps the others' numbers (each task keeps the machine and date it was measured on)."""
    for task in result["tasks"].values():
        task["machine"] = result["machine"]
    for key in ("train_seconds", "configs", "tasks"):
        result[key] = {**earlier(path, key), **result[key]}
    return result


if __name__ == "__main__":
    sys.exit(main())
