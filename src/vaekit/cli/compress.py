"""`vaekit compress | decompress`: image files <-> .vkz files coded with a trained model."""
from __future__ import annotations

from pathlib import Path

from vaekit.cli.values import COUNT


def register(sub) -> None:
    comp = sub.add_parser("compress", help="compress images with a trained model into one .vkz file")
    comp.add_argument("run", help="run folder of the model: a VAE with a bernoulli or logistic-mixture likelihood "
                      "(--lossless), or a lossy codec (--model hyperprior or factorized)")
    comp.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, or a dataset name")
    comp.add_argument("-o", "--out", required=True, help="output .vkz file")
    comp.add_argument("--lossless", action="store_true",
                      help="bits-back ANS coding: decompressed pixels are identical to the input")
    comp.add_argument("--quality", type=int, help="lossy codec: quality level 1..Q (higher: more bits, better "
                      "images; default: the highest)")
    comp.add_argument("--refine", type=int, default=0, metavar="STEPS",
                      help="lossy codec: fit each image's latents to it for STEPS gradient steps before coding "
                      "(smaller files or better pictures, slower encoding; the decoder is unchanged; 20 is a "
                      "good start)")
    comp.add_argument("--split", default="test", choices=("train", "test"), help="split of a dataset INPUT")
    comp.add_argument("--data-dir", help="folder holding existing IDX files (for a dataset INPUT)")
    comp.add_argument("--limit", type=COUNT, help="only the first N images of a dataset INPUT")
    comp.add_argument("--latent-bits", type=int, default=None,
                      help="bins per latent dimension, as a power of two (default: 10)")
    comp.add_argument("--threads", type=COUNT, help="torch CPU threads")
    comp.set_defaults(func=cmd_compress, out_kind="file")

    dec = sub.add_parser("decompress", help="decode a .vkz file into PNG images")
    dec.add_argument("file", help="a .vkz file")
    dec.add_argument("--run", help="run folder of the model that compressed it (default: the one the file names)")
    dec.add_argument("-o", "--out", required=True, help="output folder for the PNG files")
    dec.add_argument("--threads", type=COUNT, help="torch CPU threads")
    dec.set_defaults(func=cmd_decompress, out_kind="folder")


def cmd_compress(args) -> None:
    import torch

    from vaekit.api import load
    from vaekit.codecs import container, images, lossless
    from vaekit.codecs.bitsback import LATENT_BITS
    from vaekit.errors import VaekitError
    from vaekit.models.likelihoods import Bernoulli
    from vaekit.models.transform import TransformCodec

    if args.threads:
        torch.set_num_threads(args.threads)
    run = load(args.run)
    if isinstance(run.model, TransformCodec):
        if args.lossless:
            raise VaekitError(f"the run {args.run} is a lossy codec; drop --lossless (or use a VAE run for lossless)")
        compress_lossy(args, run)
        return
    if not args.lossless:
        raise VaekitError(f"the run {args.run} is a VAE: pass --lossless for bits-back coding (lossy --quality "
                          "needs a codec run, --model hyperprior)")
    x, names = images.collect(args.inputs, run.model.image_shape[0], args.split, args.data_dir,
                              binarize=isinstance(run.model.likelihood, Bernoulli), limit=args.limit)
    box = lossless.compress(run, x, names, args.latent_bits or LATENT_BITS)
    path = container.write(args.out, box)
    size = path.stat().st_size
    seeded, seed_codec, how = box.meta["seed_images"], box.meta["seed_codec"], ""
    if seeded == len(x):
        how = f" (all by the {seed_codec} seed codec: too few images to start bits-back)"
    elif seeded:
        how = f" (the first {seeded} by the {seed_codec} seed codec, the rest by bits-back)"
    print(f"{path}: {len(x)} images, {size} bytes, {8 * size / x.numel():.4f} bits/dim{how}")


def cmd_decompress(args) -> None:
    import torch

    from vaekit.api import load
    from vaekit.codecs import container, images, lossless, lossy
    from vaekit.errors import VaekitError

    if args.threads:
        torch.set_num_threads(args.threads)
    box = container.read(args.file)
    run_dir = args.run or box.meta.get("run")
    if not isinstance(run_dir, str) or not Path(run_dir).is_dir():
        raise VaekitError(f"{args.file} was compressed with the run {run_dir}, which is not there; "
                          "pass --run RUN with the run folder of that model")
    decoder = lossy if box.codec == "transform" else lossless
    x, names = decoder.decompress(load(run_dir), box, args.file)
    print(f"{images.write_pngs(args.out, x, names)}: {len(x)} images")


def compress_lossy(args, run) -> None:
    from vaekit.codecs import container, images, lossy

    x, names = images.collect_any_size(args.inputs, run.model.image_shape[0], args.split, args.data_dir, args.limit)
    box = lossy.compress(run, x, names, args.quality, args.refine, progress=True)
    path = container.write(args.out, box)
    size, pixels = path.stat().st_size, sum(im.shape[1] * im.shape[2] for im in x)
    q = box.meta["quality"]
    print(f"{path}: {len(x)} images, quality {q} of {run.model.qualities} (lambda {run.model.lambdas[q - 1]:g}), "
          f"{size} bytes, {8 * size / pixels:.4f} bpp (file size / pixels)")
