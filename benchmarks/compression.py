"""Lossless compression of the MNIST test set: vaekit's bits-back ANS files against the classic codecs.

    python benchmarks/compression.py [DATA_DIR] [--run-binary RUN] [--run-8bit RUN] [--limit N]
    python benchmarks/compression.py lossy [IMAGE_FOLDER] [--run-photos RUN] [--run-mnist RUN]   (lossy:
        the learned transform codec against JPEG and WebP, and on MNIST; see compression_lossy.py)

Bits per dimension come from the sizes of real files (vaekit: the whole .vkz file of a full
round trip, decoded with one thread after encoding with --threads and checked pixel for pixel).
Two settings, each with its own model:
  8-bit:     the test images as they are; a VAE with the discretized logistic mixture likelihood
  binarized: the test set binarized once with seed 0 (the evaluation protocol); a Bernoulli VAE
The model's negative ELBO (bits/dim) is printed beside the file size: the gap is the coding
overhead (latent discretization, table quantization, the first image's initial bits, the header).
Without --run-* the script trains the models itself (the configs below, about 10 minutes on 2 idle cores).
"""
from __future__ import annotations

import argparse
import bz2
import gzip
import io
import lzma
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
from vaekit.codecs import container, lossless
from vaekit.config import Config
from vaekit.data import load_dataset
from vaekit.engine.batches import binarize_once
from vaekit.engine.trainer import TrainData, fit
from vaekit.metrics import evaluate

MODELS = {
    "8-bit": {"data": {"data": "mnist", "val_fraction": 0},
              "model": {"arch": "mlp", "hidden_dims": [500], "latent_dim": 32, "likelihood": "logistic-mixture",
                        "mixture_components": 2},
              "train": {"epochs": 5, "batch_size": 128, "lr": 1e-3, "lr_schedule": "cosine"}},
    "binarized": {"data": {"data": "mnist", "val_fraction": 0},
                  "model": {"arch": "mlp", "hidden_dims": [500], "latent_dim": 32, "likelihood": "bernoulli"},
                  "train": {"epochs": 30, "batch_size": 128, "lr": 1e-3, "lr_schedule": "cosine",
                            "ema_decay": 0.999}},
}


def classic_codecs(images: np.ndarray, binary: bool) -> dict[str, float]:
    """Bits per dimension of the usual general-purpose and image codecs on uint8 (N, H, W) images
    (binary images as 0/1 bytes for the stream codecs and as 1-bit images for PNG and WebP)."""
    raw = images.tobytes()
    dims = images.size
    sizes = {"lzma (preset 9e, whole array)": len(lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME)),
             "bzip2 -9 (whole array)": len(bz2.compress(raw, 9)),
             "gzip -9 (whole array)": len(gzip.compress(raw, 9, mtime=0))}
    png = webp = 0
    for image in images:
        pil = Image.fromarray(image * 255).convert("1") if binary else Image.fromarray(image)
        png += len(_encoded(pil, "PNG", optimize=True))
        webp += len(_encoded(pil.convert("L"), "WEBP", lossless=True, quality=100, method=6))
    sizes["PNG per image (optimize)"] = png
    sizes["WebP lossless per image (method 6)"] = webp
    return {name: 8 * size / dims for name, size in sizes.items()}


def _encoded(pil: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    pil.save(buf, format=fmt, **kw)
    return buf.getvalue()


def get_run(setting: str, run_dir: str | None, train_images: torch.Tensor, threads: int, workdir: Path):
    if run_dir:
        return load(run_dir), 0.0
    config = Config.from_dict(MODELS[setting]).replace({"threads": threads})
    started = time.perf_counter()
    fit(config, workdir / setting, data=TrainData(train_images, train_images[:0], binarize=setting == "binarized"),
        progress=False)
    return load(workdir / setting), time.perf_counter() - started


def measure_vaekit(run, images: torch.Tensor, threads: int, workdir: Path, setting: str) -> dict:
    """A full round trip through a file: encode with `threads`, decode with one thread."""
    names = [f"{i:05d}.png" for i in range(len(images))]
    path = workdir / f"{setting}.vkz"
    torch.set_num_threads(threads)
    started = time.perf_counter()
    container.write(path, lossless.compress(run, images, names))
    encode_s = time.perf_counter() - started
    torch.set_num_threads(1)
    started = time.perf_counter()
    decoded, _ = lossless.decompress(run, container.read(path))
    decode_s = time.perf_counter() - started
    torch.set_num_threads(threads)
    if not torch.equal(decoded, images):
        raise SystemExit(f"{setting}: the round trip changed pixels")
    x = images.float() / 255
    metrics = evaluate(run.model, x, generator=torch.Generator().manual_seed(0), progress=False)
    dims = images.numel()
    return {"file_bytes": path.stat().st_size, "bits_per_dim": 8 * path.stat().st_size / dims,
            "neg_elbo_bits_per_dim": metrics["neg_elbo_nats"] * len(images) / (dims * math.log(2)),
            "encode_seconds": encode_s, "decode_seconds": decode_s, "exact": True}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["lossy"]:
        import compression_lossy

        return compression_lossy.main(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir", nargs="?", default=default_mnist_dir(), help="folder with the MNIST IDX files")
    p.add_argument("--run-8bit", help="use this trained logistic-mixture run instead of training one")
    p.add_argument("--run-binary", help="use this trained Bernoulli run instead of training one")
    p.add_argument("--settings", default="8-bit,binarized")
    p.add_argument("--limit", type=int, help="only the first N test images (quick checks)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/compression_lossless.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    train = load_dataset("mnist", "train", data_dir=args.data_dir, progress=False).images
    test = load_dataset("mnist", "test", data_dir=args.data_dir, progress=False).images[: args.limit]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for setting in args.settings.split(","):
            binary = setting == "binarized"
            images = (binarize_once(test) * 255).to(torch.uint8) if binary else test
            classic = classic_codecs(images[:, 0].numpy() // (255 if binary else 1), binary)
            run, train_s = get_run(setting, args.run_binary if binary else args.run_8bit, train, args.threads,
                                   Path(tmp))
            ours = measure_vaekit(run, images, args.threads, Path(tmp), setting)
            results[setting] = {"vaekit": {**ours, "train_seconds": train_s, "config": run.config.to_dict()},
                                "classic": classic, "n_test_images": len(images), "machine": machine()}
            print(f"\n{setting} MNIST test ({len(images)} images), bits/dim from file sizes")
            print(f"  {'vaekit bits-back ANS (.vkz)':38s} {ours['bits_per_dim']:.4f}   "
                  f"(model -ELBO {ours['neg_elbo_bits_per_dim']:.4f}; encode {ours['encode_seconds']:.0f} s, "
                  f"decode {ours['decode_seconds']:.0f} s, exact)")
            for name, bpd in sorted(classic.items(), key=lambda kv: kv[1]):
                print(f"  {name:38s} {bpd:.4f}")
            sys.stdout.flush()
    # the settings this run did not measure keep their earlier results (each with its machine and date)
    write_result(args.out, {"results": {**earlier(args.out, "results"), **results}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
