"""Restoration of photos: x4 super-resolution on Set5 and Set14 (PSNR on the Y channel, BT.601,
4-pixel border shaved) against bicubic, and colour Gaussian denoising (sigma = 25 on 0..255)
against colour BM3D, all on the same inputs.

    python benchmarks/restoration_photos.py [--val DIR] [--sr-run RUN] [--denoise-run RUN] [--no-bm3d]
                                            [--bm3d-cache DIR] [--jobs N]

The models are trained beforehand on random crops of the training photos; docs/restoration.md
has the exact commands (`vaekit crops ...`, then `vaekit train ... --condition downscale --tiled`
and `vaekit train ... --condition noise --condition-noise-sigma 0.098 --tiled`).
A task whose model is not given keeps the numbers an earlier run wrote to --out for it. Each task
measured also writes a picture of crops beside --out (input, baseline, vaekit, ground truth).
Super-resolution protocol: each image cropped to a multiple of 4, shrunk by Pillow's bicubic
(antialiased, like MATLAB's imresize); bicubic upscaling is Pillow's too.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from common import REPO, machine, write_result

import vaekit
from vaekit.imaging import save_grid
from vaekit.models.conditions import quantize_8bit
from vaekit.tasks.restore import denoise, upscale

SET5 = ("baby", "bird", "butterfly", "head", "woman")
SCALE = 4
SIGMA_255 = 25
ENSEMBLE = "vaekit, self-ensemble"  # the mean over the 8 flips and rotations (--self-ensemble), 8x the cost
PICTURE_IMAGES = ("butterfly", "barbara", "zebra")  # the crops shown in the pictures


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


def super_resolution(run, images: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """Y PSNR per method and image, and the outputs (method -> image name -> uint8 (H, W, 3))."""
    outputs = {"low-res input": {}, "bicubic": {}, **({"vaekit": {}, ENSEMBLE: {}} if run else {})}
    truths = {}
    for name, image in images.items():
        h, w = image.shape[0] // SCALE * SCALE, image.shape[1] // SCALE * SCALE
        truths[name] = image[:h, :w]
        low = resize(truths[name], h // SCALE, w // SCALE)
        outputs["low-res input"][name] = low.repeat(SCALE, 0).repeat(SCALE, 1)  # shown as blocks
        outputs["bicubic"][name] = resize(low, h, w)
        if run:
            for method, ensemble in (("vaekit", False), (ENSEMBLE, True)):
                high = upscale(run.model, as_tensor(low), SCALE, tiles=run.config.model.tiled, ensemble=ensemble)
                outputs[method][name] = as_uint8(high)
    scores = {method: {name: y_psnr_db(out[name], truths[name], SCALE) for name in images}
              for method, out in outputs.items() if method != "low-res input"}
    return scores, {**outputs, "ground truth": truths}


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


def bm3d_outputs(noisy: dict[str, torch.Tensor], seed: int, cache: Path | None, jobs: int) -> dict[str, np.ndarray]:
    """`bm3d_output` of every noisy image, `jobs` images at a time in separate processes (BM3D runs
    on one core; fresh interpreters, so no torch thread pool is forked)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context) as pool:
        futures = {name: pool.submit(bm3d_output, x, name, seed + i, cache) for i, (name, x) in enumerate(noisy.items())}
        return {name: future.result() for name, future in futures.items()}


def noisy_copy(image: np.ndarray, seed: int) -> torch.Tensor:
    """The script's noisy input for one image: Gaussian noise drawn with its own seed, quantized to 8 bits."""
    clean = as_tensor(image)
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed))
    return quantize_8bit(clean + SIGMA_255 / 255 * noise)


def denoising(run, images: dict[str, np.ndarray], bm3d: bool, seed: int, cache: Path | None = None,
              jobs: int = 1) -> tuple[dict, dict]:
    """RGB PSNR per method and image, and the outputs (method -> image name -> uint8 (H, W, 3))."""
    noisy = {name: noisy_copy(image, seed + i) for i, (name, image) in enumerate(images.items())}
    outputs = {"noisy input": {name: as_uint8(x) for name, x in noisy.items()}}
    if bm3d:
        outputs["colour BM3D"] = bm3d_outputs(noisy, seed, cache, jobs)
    if run:
        for method, ensemble in (("vaekit", False), (ENSEMBLE, True)):
            outputs[method] = {name: as_uint8(denoise(run.model, x, SIGMA_255 / 255, tiles=run.config.model.tiled,
                                                      ensemble=ensemble)) for name, x in noisy.items()}
    scores = {method: {name: rgb_psnr_db(out[name], images[name]) for name in images} for method, out in outputs.items()}
    return scores, {**outputs, "ground truth": images}


def save_picture(path: Path, outputs: dict[str, dict[str, np.ndarray]], names=PICTURE_IMAGES, size: int = 128) -> None:
    """A row per image (its central size x size crop, smaller where an image is), a column per method,
    ground truth last."""
    shown = [n for n in names if n in outputs["ground truth"]]
    size = min([size] + [min(outputs["ground truth"][n].shape[:2]) for n in shown])
    crops = []
    for name in shown:
        h, w = outputs["ground truth"][name].shape[:2]
        top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
        crops += [as_tensor(out[name][top:top + size, left:left + size])[0] for out in outputs.values()]
    if crops:
        save_grid(path, torch.stack(crops), nrow=len(outputs))
        print(f"wrote {path} (columns: {', '.join(outputs)})")


def by_set(scores: dict[str, dict[str, float]]) -> dict:
    """Mean PSNR per method over Set5 and over Set14 (the other images)."""
    table = {}
    for method, per_image in scores.items():
        for set_name, members in (("Set5", [n for n in per_image if n in SET5]),
                                  ("Set14", [n for n in per_image if n not in SET5])):
            if members:
                table.setdefault(set_name, {})[method] = float(np.mean([per_image[n] for n in members]))
    return table


def kept_section(earlier_result: dict, task: str) -> dict | None:
    """A task's section from an earlier run of this script (one that had the task's model), with the
    machine and date it was measured on: a run given one model keeps the other task's numbers."""
    section = earlier_result.get(task)
    return {"machine": earlier_result["machine"], **section} if section and section.get("run") else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--val", default=str(REPO.parent / "shared" / "data" / "natural" / "val"))
    p.add_argument("--sr-run", help="run folder of a --condition downscale (x4) model (without it: the "
                   "task's numbers already in --out are kept, else bicubic alone)")
    p.add_argument("--denoise-run", help="run folder of a denoising model (sigma 25/255; without it, "
                   "likewise)")
    p.add_argument("--no-bm3d", action="store_true", help="skip colour BM3D (minutes per image)")
    p.add_argument("--bm3d-cache", default="runs/bm3d-cache",
                   help="folder keeping BM3D's outputs between runs (they depend only on the image and seed)")
    p.add_argument("--jobs", type=int, default=os.cpu_count(), help="BM3D processes at once (default: one per core)")
    p.add_argument("--limit", type=int, help="only the first N images (quick runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/restoration_photos.json")
    args = p.parse_args(argv)
    paths = sorted(Path(args.val).glob("*.png"))[:args.limit]
    images = {path.stem: read_rgb(path) for path in paths}
    result = {"machine": machine(), "images": list(images)}
    earlier_result = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
    for task, run_dir, picture, work in (
            ("x4 super-resolution, Y PSNR (dB), 4-pixel shave", args.sr_run, "restoration_photos_upscale.png",
             lambda run: super_resolution(run, images)),
            (f"colour denoising sigma={SIGMA_255}, RGB PSNR (dB)", args.denoise_run, "restoration_photos_denoise.png",
             lambda run: denoising(run, images, not args.no_bm3d, args.seed, Path(args.bm3d_cache), args.jobs))):
        if run_dir is None and (kept := kept_section(earlier_result, task)):
            result[task] = kept
            print(f"\n{task}: kept from {args.out} ({kept['run']}, measured {kept['machine']['date']})")
            continue
        started = time.perf_counter()
        run = vaekit.load(run_dir) if run_dir else None
        scores, outputs = work(run)
        save_picture(Path(args.out).parent / picture, outputs)
        result[task] = {"run": run_dir, "machine": result["machine"], "per_image": scores, "by_set": by_set(scores),
                        "seconds": time.perf_counter() - started}
        print(f"\n{task}")
        for set_name, methods in result[task]["by_set"].items():
            print("  " + set_name + ": " + ", ".join(f"{m} {v:.2f}" for m, v in methods.items()))
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
