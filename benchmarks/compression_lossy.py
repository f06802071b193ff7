"""Lossy compression: vaekit's learned transform codec against JPEG and WebP, and on MNIST.

    python benchmarks/compression.py lossy IMAGE_FOLDER [--run-photos RUN] [--run-mnist RUN]
        [--train-folder FOLDER] [--mnist-dir DIR] [--mnist-limit N] [--refine STEPS]

Photos: every image of IMAGE_FOLDER (Set5 + Set14 in ../shared/data/natural/val; grey ones are
converted to RGB for every codec) is coded at each quality level of the codec, one .vkz file per
image and level, decoded with one thread; its bpp is the whole file's size (header included) over
the pixels, and the PSNR is on RGB 8-bit pixels. JPEG (Pillow, 4:2:0, optimize) and WebP (Pillow,
method 6) are measured at a sweep of qualities in the same run. Curves are per-image means of bpp
and PSNR at each setting; the Bjøntegaard-delta rate (BD-rate) of vaekit against each codec is the
mean log-rate difference over the PSNR range both curves cover (piecewise-cubic interpolation,
as in the current VCEG/JVET tools). The codec's own estimated rate (its entropy model, no file) is
printed beside the file's. With --refine STEPS every photo is coded a second time with that many
steps of encoder-side latent refinement (vaekit.codecs.refine; same decoder): a second vaekit curve
with its own BD-rates, and both curves' encoding times in the JSON. For scale it also prints what the
DCT shortcut alone could reach: the PSNR of the M lowest-frequency DCT coefficients per block.

MNIST: the test images (the first --mnist-limit) in one .vkz file per quality level: bpp from the
file size, PSNR per image.

Without --run-photos / --run-mnist the script trains the codecs itself with PHOTO_CONFIG and
MNIST_CONFIG (the photo one on random 128x128 crops of --train-folder, shrunk by PHOTO_SCALES).
"""
from __future__ import annotations

import argparse
import io
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from common import default_mnist_dir, earlier, machine, write_result

from vaekit.api import load
from vaekit.codecs import container, lossy
from vaekit.config import Config
from vaekit.data import load_dataset
from vaekit.engine.trainer import TrainData, fit
from vaekit.metrics import psnr_db
from vaekit.models.transform import BLOCK, BlockTransform, lowest_dct_bases

REPO = Path(__file__).resolve().parents[1]
NATURAL = REPO.parent / "shared" / "data" / "natural"
# the documented photo run (docs/compression.md, through the CLI) trained 21,660 steps of 8 crops of 128x128;
# this config trains 22,800 (12 epochs of PHOTO_CROPS)
PHOTO_CONFIG = {"model": {"arch": "hyperprior", "codec_channels": 64, "codec_latent": 256, "codec_shortcut": "dct",
                          "lmbda": (0.0025, 0.005, 0.01, 0.02, 0.04)},
                "train": {"epochs": 12, "batch_size": 8, "lr": 1e-3, "lr_schedule": "cosine", "warmup_steps": 200,
                          "grad_clip": 1.0, "ema_decay": 0.999}}
PHOTO_CROPS = 15200  # 128x128 training crops; with PHOTO_CONFIG about 155 minutes of 2 threads (the CLI run's pace)
PHOTO_SCALES = (0.6, 0.5, 0.4)  # the training photos are quality-75 JPEGs: shrunk, they lose the artifacts
MNIST_CONFIG = {"data": {"val_fraction": 0.02, "limit": 20000},
                "model": {"arch": "factorized", "codec_channels": 32, "codec_latent": 32,
                          "lmbda": (0.002, 0.008, 0.032, 0.128)},
                "train": {"epochs": 3, "batch_size": 32, "lr": 2e-3, "lr_schedule": "cosine", "warmup_steps": 50,
                          "grad_clip": 1.0, "ema_decay": 0.999}}
DCT_CEILING_LATENTS = (96, 128, 192, 256)  # latent sizes M whose DCT-only PSNR the benchmark prints
JPEG_QUALITIES = (5, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90)
WEBP_QUALITIES = (0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90)


def read_rgb(folder: Path) -> tuple[list[torch.Tensor], list[str]]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
    if not files:
        raise SystemExit(f"no images in {folder}")
    images = [torch.from_numpy(np.asarray(Image.open(f).convert("RGB")).copy()).permute(2, 0, 1) for f in files]
    return images, [f"{f.stem}.png" for f in files]


def psnr_rgb(a: torch.Tensor, b: torch.Tensor) -> float:
    return psnr_db(a.float()[None] / 255, b.float()[None] / 255).item()


def classic_curve(images: list[torch.Tensor], fmt: str, qualities) -> list[dict]:
    """Mean bpp (file bytes) and PSNR of Pillow's JPEG or WebP at each quality setting."""
    curve = []
    for q in qualities:
        bpp, psnr = [], []
        for image in images:
            buf = io.BytesIO()
            pil = Image.fromarray(image.permute(1, 2, 0).numpy())
            kwargs = {"quality": q, "optimize": True} if fmt == "JPEG" else {"quality": q, "method": 6}
            pil.save(buf, format=fmt, **kwargs)
            decoded = torch.from_numpy(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).copy())
            bpp.append(8 * buf.tell() / (image.shape[1] * image.shape[2]))
            psnr.append(psnr_rgb(decoded.permute(2, 0, 1), image))
        curve.append({"setting": q, "bpp": float(np.mean(bpp)), "psnr_db": float(np.mean(psnr))})
    return curve


def vaekit_curve(run, images: list[torch.Tensor], names: list[str], workdir: Path, threads: int,
                 refine_steps: int = 0) -> list[dict]:
    """Per quality level: a .vkz file per image (encoded with `threads` and `refine_steps` of latent
    refinement, decoded with one thread)."""
    curve = []
    model = run.model
    for q in range(model.qualities):
        bpp, est, psnr, enc_s, dec_s = [], [], [], 0.0, 0.0
        for image, name in zip(images, names):
            path = workdir / f"q{q + 1}-{name}.vkz"
            torch.set_num_threads(threads)
            started = time.perf_counter()
            container.write(path, lossy.compress(run, [image], [name], quality=q + 1, refine_steps=refine_steps))
            enc_s += time.perf_counter() - started
            torch.set_num_threads(1)
            started = time.perf_counter()
            decoded, _ = lossy.decompress(run, container.read(path))
            dec_s += time.perf_counter() - started
            pixels = image.shape[1] * image.shape[2]
            bpp.append(8 * path.stat().st_size / pixels)
            if not refine_steps:  # the entropy model's estimate is of the unrefined latents
                est.append(lossy.estimate(model, image.float()[None] / 255, q)["bpp"])
            psnr.append(psnr_rgb(decoded[0], image))
        curve.append({"setting": q + 1, "lmbda": model.lambdas[q], "bpp": float(np.mean(bpp)),
                      "estimated_bpp": float(np.mean(est)) if est else None, "psnr_db": float(np.mean(psnr)),
                      "encode_seconds": enc_s, "decode_seconds": dec_s})
        estimate = f"; model estimate {curve[-1]['estimated_bpp']:.4f}" if est else ""
        print(f"  vaekit quality {q + 1}: {curve[-1]['bpp']:.4f} bpp (file{estimate}), {curve[-1]['psnr_db']:.2f} dB, "
              f"encoding {enc_s:.1f} s", flush=True)
    torch.set_num_threads(threads)
    return curve


def dct_ceiling_db(images: list[torch.Tensor], latent: int) -> float:
    """Mean PSNR (dB) of the images' whole 16x16 blocks kept to their `latent` lowest-frequency DCT
    coefficients (lowest_dct_bases, unquantized): the most the DCT shortcut alone could give."""
    bases = lowest_dct_bases(3, latent).flatten(1)
    analysis, synthesis = BlockTransform(bases, 3), BlockTransform(bases, 3, inverse=True)
    psnr = []
    with torch.no_grad():
        for image in images:
            x = image[None, :, :image.shape[1] // BLOCK * BLOCK, :image.shape[2] // BLOCK * BLOCK].float() / 255
            psnr.append(psnr_db(synthesis(analysis(x - 0.5)) + 0.5, x).item())
    return float(np.mean(psnr))


def bd_rate(anchor: list[dict], test: list[dict]) -> float | None:
    """Bjøntegaard-delta rate of `test` against `anchor`, in percent (negative: fewer bits for the
    same PSNR), over the PSNR range both cover; log-rate interpolated piecewise-cubically (PCHIP)."""
    from scipy.interpolate import PchipInterpolator

    def fit(curve):
        pts = sorted((c["psnr_db"], math.log(c["bpp"])) for c in curve)
        psnr, log_rate = zip(*pts)
        return PchipInterpolator(psnr, log_rate), psnr[0], psnr[-1]

    (fa, lo_a, hi_a), (ft, lo_t, hi_t) = fit(anchor), fit(test)
    lo, hi = max(lo_a, lo_t), min(hi_a, hi_t)
    if hi <= lo:
        return None
    grid = np.linspace(lo, hi, 200)
    diff = np.trapezoid(ft(grid) - fa(grid), grid) / (hi - lo)
    return float((math.exp(diff) - 1) * 100)


def plot(curves: dict[str, list[dict]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=110)
    for name, curve in curves.items():
        ax.plot([c["bpp"] for c in curve], [c["psnr_db"] for c in curve], marker="o", ms=3, label=name)
    ax.set_xlabel("bits per pixel (file size)")
    ax.set_ylabel("PSNR RGB (dB)")
    ax.set_xlim(0, 2.0)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    print(f"wrote {path}")


def train_photo_codec(folder: Path, workdir: Path, threads: int):
    from vaekit.tasks.restore import random_crops
    from vaekit.cli.restore import image_files, read_any

    crops = random_crops([read_any(p, 3) for p in image_files(folder)], 128, PHOTO_CROPS + 32,
                         torch.Generator().manual_seed(0), scales=PHOTO_SCALES, orientations=True)
    config = Config.from_dict(PHOTO_CONFIG).replace({"threads": threads})
    fit(config, workdir / "photos", data=TrainData(crops[32:], crops[:32], binarize=False), progress=False)
    return load(workdir / "photos")


def mnist_section(run_dir: str | None, data_dir: str | None, limit: int, workdir: Path, threads: int) -> dict:
    test = load_dataset("mnist", "test", data_dir=data_dir, progress=False).images[:limit]
    if run_dir:
        run = load(run_dir)
    else:
        train = load_dataset("mnist", "train", data_dir=data_dir, progress=False).images
        config = Config.from_dict(MNIST_CONFIG).replace({"threads": threads})
        fit(config, workdir / "mnist", data=TrainData(train[:20000], train[-1000:], binarize=False), progress=False)
        run = load(workdir / "mnist")
    images, names = list(test), [f"{i:05d}.png" for i in range(len(test))]
    rows = []
    print(f"\nMNIST test ({len(test)} images in one .vkz file per quality level)")
    for q in range(run.model.qualities):
        path = workdir / f"mnist-q{q + 1}.vkz"
        container.write(path, lossy.compress(run, images, names, quality=q + 1))
        decoded, _ = lossy.decompress(run, container.read(path))
        psnr = float(np.mean([psnr_rgb(d, i) for d, i in zip(decoded, images)]))
        est = lossy.estimate(run.model, test.float() / 255, q)["bpp"]
        rows.append({"quality": q + 1, "lmbda": run.model.lambdas[q], "file_bytes": path.stat().st_size,
                     "bpp": 8 * path.stat().st_size / test[:, 0].numel(), "estimated_bpp": est, "psnr_db": psnr,
                     "bytes_per_image": path.stat().st_size / len(test)})
        print(f"  quality {q + 1} (lambda {run.model.lambdas[q]:g}): {rows[-1]['bpp']:.4f} bpp file "
              f"(estimate {est:.4f}), {rows[-1]['bytes_per_image']:.1f} bytes/image, PSNR {psnr:.2f} dB", flush=True)
    return {"levels": rows, "config": run.config.to_dict(), "run": str(run.path)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("images", nargs="?", default=str(NATURAL / "val"), help="folder of test photos")
    p.add_argument("--run-photos", help="a trained RGB codec run (default: train one, PHOTO_CONFIG)")
    p.add_argument("--train-folder", default=str(NATURAL / "train"), help="photos to train on when no run is given")
    p.add_argument("--run-mnist", help="a trained MNIST codec run (default: train one, MNIST_CONFIG)")
    p.add_argument("--mnist-dir", default=default_mnist_dir(), help="folder with the MNIST IDX files")
    p.add_argument("--mnist-limit", type=int, default=2000, help="MNIST test images to code (default 2000)")
    p.add_argument("--skip-mnist", action="store_true", help="keep the MNIST section of --out as it is")
    p.add_argument("--refine", type=int, default=0, metavar="STEPS",
                   help="also code every photo with this many steps of latent refinement (a second vaekit curve)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/compression_lossy.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    images, names = read_rgb(Path(args.images))
    result = {"machine": machine(), "images": args.images, "n_images": len(images)}
    with tempfile.TemporaryDirectory() as tmp:
        run = load(args.run_photos) if args.run_photos else train_photo_codec(Path(args.train_folder), Path(tmp),
                                                                              args.threads)
        print(f"{args.images}: {len(images)} images; bpp from file sizes, PSNR RGB; means over images")
        name = "vaekit (hyperprior)" if run.model.kind == "hyperprior" else "vaekit (factorized)"
        ours = {name: vaekit_curve(run, images, names, Path(tmp), args.threads)}
        if args.refine:
            print(f"  with {args.refine} steps of latent refinement per image:")
            refined = f"{name}, refined {args.refine} steps"
            ours[refined] = vaekit_curve(run, images, names, Path(tmp), args.threads, args.refine)
        classic = {"JPEG (Pillow)": classic_curve(images, "JPEG", JPEG_QUALITIES),
                   "WebP (Pillow)": classic_curve(images, "WEBP", WEBP_QUALITIES)}
        curves = {**ours, **classic}
        bd = {mine: {other: bd_rate(anchor, curve) for other, anchor in classic.items()}
              for mine, curve in ours.items()}
        for label, curve in curves.items():
            print(f"  {label:38s} " + "  ".join(f"{c['bpp']:.3f}/{c['psnr_db']:.2f}" for c in curve))
        for mine, row in bd.items():
            for other, value in row.items():
                print(f"  BD-rate of {mine} against {other}: " + ("n/a (no PSNR overlap)" if value is None
                                                                  else f"{value:+.1f}%"))
        plot(curves, Path(args.out).with_suffix(".png"), f"{Path(args.images).name}: {len(images)} images")
        ceiling = {m: dct_ceiling_db(images, m) for m in DCT_CEILING_LATENTS}
        print("  PSNR of the lowest M DCT coefficients per 16x16 block, unquantized: "
              + ", ".join(f"M={m} {v:.2f} dB" for m, v in ceiling.items()))
        result["photos"] = {"curves": curves, "bd_rate_percent": bd[name], "config": run.config.to_dict(),
                            "run": str(run.path), "trained_seconds": sum(h["seconds"] for h in run.history),
                            "dct_ceiling_psnr_db": ceiling}
        if args.refine:
            result["photos"]["refined"] = {"steps": args.refine, "bd_rate_percent": bd[refined]}
        if not args.skip_mnist:
            result["mnist"] = {**mnist_section(args.run_mnist, args.mnist_dir, args.mnist_limit, Path(tmp),
                                               args.threads), "machine": result["machine"]}
        elif kept := earlier(args.out, "mnist"):  # an earlier run's numbers, which carry its machine and date
            result["mnist"] = kept
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
