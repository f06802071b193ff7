"""`vaekit compress | decompress`: image files <-> .vkz files coded with a trained model."""
from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    comp = sub.add_parser("compress", help="compress images with a trained model into one .vkz file")
    comp.add_argument("run", help="run folder of the model (its likelihood must be bernoulli or logistic-mixture)")
    comp.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, or a dataset name")
    comp.add_argument("-o", "--out", required=True, help="output .vkz file")
    comp.add_argument("--lossless", action="store_true", required=True,
                      help="bits-back ANS coding: decompressed pixels are identical to the input")
    comp.add_argument("--split", default="test", choices=("train", "test"), help="split of a dataset INPUT")
    comp.add_argument("--data-dir", help="folder holding existing IDX files (for a dataset INPUT)")
    comp.add_argument("--limit", type=int, help="only the first N images of a dataset INPUT")
    comp.add_argument("--latent-bits", type=int, default=None,
                      help="bins per latent dimension, as a power of two (default: 10)")
    comp.add_argument("--threads", type=int, help="torch CPU threads")
    comp.set_defaults(func=cmd_compress)

    dec = sub.add_parser("decompress", help="decode a .vkz file into PNG images")
    dec.add_argument("file", help="a .vkz file")
    dec.add_argument("--run", help="run folder of the model that compressed it (default: the one the file names)")
    dec.add_argument("-o", "--out", required=True, help="output folder for the PNG files")
    dec.add_argument("--threads", type=int, help="torch CPU threads")
    dec.set_defaults(func=cmd_decompress)


def cmd_compress(args) -> None:
    import torch

    from vaekit.api import load
    from vaekit.codecs import container, images, lossless
    from vaekit.codecs.bitsback import LATENT_BITS
    from vaekit.models.likelihoods import Bernoulli

    if args.threads:
        torch.set_num_threads(args.threads)
    run = load(args.run)
    x, names = images.collect(args.inputs, run.model.image_shape[0], args.split, args.data_dir,
                              binarize=isinstance(run.model.likelihood, Bernoulli), limit=args.limit)
    box = lossless.compress(run, x, names, args.latent_bits or LATENT_BITS)
    path = container.write(args.out, box)
    size = path.stat().st_size
    print(f"{path}: {len(x)} images, {size} bytes, {8 * size / x.numel():.4f} bits/dim")


def cmd_decompress(args) -> None:
    import torch

    from vaekit.api import load
    from vaekit.codecs import container, images, lossless
    from vaekit.errors import VaekitError

    if args.threads:
        torch.set_num_threads(args.threads)
    box = container.read(args.file)
    run_dir = args.run or box.meta.get("run")
    if not isinstance(run_dir, str) or not Path(run_dir).is_dir():
        raise VaekitError(f"{args.file} was compressed with the run {run_dir}, which is not there; "
                          "pass --run RUN with the run folder of that model")
    x, names = lossless.decompress(load(run_dir), box, args.file)
    print(f"{images.write_pngs(args.out, x, names)}: {len(x)} images")
