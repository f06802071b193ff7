"""Restoration of photos: x4 super-resolution on Set5 and Set14 (PSNR on the Y channel, BT.601,
4-pixel border shaved) against bicubic, and colour Gaussian denoising (sigma = 25 on 0..255)
against colour BM3D, all on the same inputs.

    python benchmarks/restoration_photos.py [--val DIR] [--sr-run RUN] [--denoise-run RUN] [--no-bm3d]
                                            [--bm3d-cache DIR]

The models are trained beforehand on random crops of the training photos; docs/restoration.md
has the exact commands (`vaekit crops ...`, then `vaekit train ... --condition downscale --tiled`
and `vaekit train ... --condition noise --condition-noise-sigma 0.098 --tiled`).
Super-resolution protocol: each image cropped to a multiple of 4, shrunk by Pillow's bicubic
(antialiased, like MATLAB's imresize); bicubic upscaling is Pillow's too.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from common import REPO, machine, write_result

import vaekit
from vaekit.models.conditions import quantize_8bit
from vaekit.tasks.restore import denoise, upscale

SET5 = ("baby", "bird", "butterfly", "head", "woman")
SCALE = 4
SIGMA_255 = 25
ENSEMBLE = "vaekit, self-ensemble"  # the mean over the 8 flips and rotations (--self-ensemble), 8x the cost


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BICUBIC))


def as_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> (1, 3, H, W) in [0, 1]."""
    return torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255


def as_uint8(x: torch.Tensor) -> np.ndarray:
    return (x[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def y_psnr_db(a: np.ndarray, b: np.ndarray, shave: int) -> float:
    """PSNR of the BT.601 luma of two uint8 RGB images, `shave` pixels left out at each border."""
    weights = np.array([65.481, 128.553, 24.966])  # Y = 16 + weights . RGB, RGB in [0, 1]
    ya, yb = (16 + (x.astype(np.float64) / 255) @ weights for x in (a, b))
    ya, yb = (y[shave:-shave, shave:-shave] if shave else y for y in (ya, yb))
    return float(10 * np.log10(255**2 / np.mean((ya - yb) ** 2)))


def rgb_psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(np.float64) - b) ** 2)))


def super_resolution(run, images: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    scores = {"bicubic": {}, "vaekit": {}, ENSEMBLE: {}} if run else {"bicubic": {}}
    for name, image in images.items():
        h, w = image.shape[0] // SCALE * SCALE, image.shape[1] // SCALE * SCALE
        truth = image[:h, :w]
        low = resize(truth, h // SCALE, w // SCALE)
        scores["bicubic"][name] = y_psnr_db(resize(low, h, w), truth, SCALE)
        if run:
            for method, ensemble in (("vaekit", False), (ENSEMBLE, True)):
                high = upscale(run.model, as_tensor(low), SCALE, tiles=run.config.model.tiled, ensemble=ensemble)
                scores[method][name] = y_psnr_db(as_uint8(high), truth, SCALE)
    return scores


def bm3d_output(noisy: torch.Tensor, name: str, seed: int, cache: Path | None) -> np.ndarray:
    """Colour BM3D of one noisy image (1, 3, H, W) as uint8 (H, W, 3); minutes per image, so the
    result is kept in `cache` (a PNG named by image, seed and sigma) for later runs of the script."""
    path = cache / f"bm3d-{name}-seed{seed}-sigma{SIGMA_255}.png" if cache else None
    if path is not None and path.exists():
        return read_rgb(path)
    import bm3d as bm3d_package

    out = bm3d_package.bm3d_rgb(noisy[0].permute(1, 2, 0).numpy(), SIGMA_255 / 255)
    out = as_uint8(torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1)[None].float())
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(out).save(path)
    return out


def denoising(run, images: dict[str, np.ndarray], bm3d: bool, seed: int,
              cache: Path | None = None) -> dict[str, dict[str, float]]:
    sigma = SIGMA_255 / 255
    scores = {"noisy input": {}}
    for i, (name, image) in enumerate(images.items()):
        clean = as_tensor(image)
        noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed + i))
        noisy = quantize_8bit(clean + sigma * noise)
        scores["noisy input"][name] = rgb_psnr_db(as_uint8(noisy), image)
        if bm3d:
            scores.setdefault("colour BM3D", {})[name] = rgb_psnr_db(bm3d_output(noisy, name, seed + i, cache), image)
        if run:
            for method, ensemble in (("vaekit", False), (ENSEMBLE, True)):
                out = denoise(run.model, noisy, sigma, tiles=run.config.model.tiled, ensemble=ensemble)
                scores.setdefault(method, {})[name] = rgb_psnr_db(as_uint8(out), image)
    return scores


def by_set(scores: dict[str, dict[str, float]]) -> dict:
    """Mean PSNR per method over Set5 and over Set14 (the other images)."""
    table = {}
    for method, per_image in scores.items():
        for set_name, members in (("Set5", [n for n in per_image if n in SET5]),
                                  ("Set14", [n for n in per_image if n not in SET5])):
            if members:
                table.setdefault(set_name, {})[method] = float(np.mean([per_image[n] for n in members]))
    return table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--val", default=str(REPO.parent / "shared" / "data" / "natural" / "val"))
    p.add_argument("--sr-run", help="run folder of a --condition downscale (x4) model")
    p.add_argument("--denoise-run", help="run folder of a denoising model (sigma 25/255)")
    p.add_argument("--no-bm3d", action="store_true", help="skip colour BM3D (minutes per image)")
    p.add_argument("--bm3d-cache", default="runs/bm3d-cache",
                   help="folder keeping BM3D's outputs between runs (they depend only on the image and seed)")
    p.add_argument("--limit", type=int, help="only the first N images (quick runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/restoration_photos.json")
    args = p.parse_args(argv)
    paths = sorted(Path(args.val).glob("*.png"))[:args.limit]
    images = {path.stem: read_rgb(path) for path in paths}
    result = {"machine": machine(), "images": list(images)}
    for task, run_dir, work in (
            ("x4 super-resolution, Y PSNR (dB), 4-pixel shave", args.sr_run,
             lambda run: super_resolution(run, images)),
            (f"colour denoising sigma={SIGMA_255}, RGB PSNR (dB)", args.denoise_run,
             lambda run: denoising(run, images, not args.no_bm3d, args.seed, Path(args.bm3d_cache)))):
        started = time.perf_counter()
        run = vaekit.load(run_dir) if run_dir else None
        scores = work(run)
        result[task] = {"run": run_dir, "per_image": scores, "by_set": by_set(scores),
                        "seconds": time.perf_counter() - started}
        print(f"\n{task}")
        for set_name, methods in result[task]["by_set"].items():
            print("  " + set_name + ": " + ", ".join(f"{m} {v:.2f}" for m, v in methods.items()))
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
