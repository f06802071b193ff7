"""`vaekit denoise | inpaint | repair | upscale | crops`: restore image files with a trained model.

INPUT is an image file (OUT: the output file) or a folder of them (OUT: a folder; same names as
PNG; a progress bar). Every output file is written atomically, and a folder's outputs appear
together once all are done (an unreadable image midway leaves none).
"""
from __future__ import annotations

from pathlib import Path

from vaekit.cli.values import COUNT, SEED, number, whole


def add_common(p, sampling: bool = True) -> None:
    p.add_argument("run", help="run folder of the trained model")
    p.add_argument("input", help="an image file, or a folder of images")
    p.add_argument("-o", "--out", required=True, help="output file (folder when INPUT is a folder)")
    if sampling:
        p.add_argument("--sample", action="store_true",
                       help="draw one plausible image from the model instead of the deterministic (prior-mean) one")
    p.add_argument("--seed", type=SEED, default=0, help="seed for sampling (default: 0)")
    p.add_argument("--threads", type=COUNT, help="torch CPU threads")


def add_ensemble(p) -> None:
    p.add_argument("--self-ensemble", action="store_true",
                   help="average the deterministic output over the 8 flips and rotations of the input "
                   "(8x slower, usually a little more accurate)")


def register(sub) -> None:
    den = sub.add_parser("denoise", help="remove Gaussian noise from images")
    add_common(den)
    den.add_argument("--sigma", type=number(above=0.0, high=1.0),
                     help="noise standard deviation, pixels in [0, 1] (default: the model's, "
                     "or estimated per image)")
    add_ensemble(den)
    den.set_defaults(func=cmd_denoise)

    inp = sub.add_parser("inpaint", help="fill holes in images; known pixels are kept exactly")
    add_common(inp, sampling=False)
    hole = inp.add_mutually_exclusive_group(required=True)
    hole.add_argument("--mask", help="PNG of the image's size, white where pixels are filled (a folder: one mask "
                      "per image, same names)")
    hole.add_argument("--box", help="the hole as x,y,w,h in pixels (top-left origin)")
    inp.add_argument("--samples", type=whole(0), default=0,
                     help="also write N posterior samples (NAME_sample1.png, ...)")
    inp.add_argument("--proposals", type=COUNT, default=128, help="importance samples per round (plain VAE), or "
                     "draws averaged into the fill (--condition occlusion model) (default: 128)")
    inp.set_defaults(func=cmd_inpaint)

    rep = sub.add_parser("repair", help="restore images degraded by lossy compression (low-quality JPEG)")
    add_common(rep)
    rep.set_defaults(func=cmd_repair)

    up = sub.add_parser("upscale", help="super-resolution with a conditional VAE")
    add_common(up)
    up.add_argument("--scale", type=int, help="upscaling factor; must be the model's (default: the model's)")
    add_ensemble(up)
    up.set_defaults(func=cmd_upscale)

    crops = sub.add_parser("crops", help="random crops of a folder of photos as a .npy, to train restoration "
                           "models on (then train with --tiled)")
    crops.add_argument("folder", help="folder of images (any sizes)")
    crops.add_argument("-o", "--out", required=True, help="output .npy file, uint8 (N, C, size, size)")
    crops.add_argument("--size", type=COUNT, default=64, help="crop side in pixels (default: 64)")
    crops.add_argument("--count", type=COUNT, default=20000, help="number of crops (default: 20000)")
    crops.add_argument("--channels", type=int, choices=(1, 3), default=3, help="1 (grey) or 3 (RGB, default)")
    crops.add_argument("--scales", default="1", help="comma-separated factors (0, 1] to shrink each photo by "
                       "before cropping, e.g. 1,0.75,0.5: more texture per pixel (default: 1)")
    crops.add_argument("--orientations", action="store_true", help="turn each crop into a random one of its 8 "
                       "flips and quarter turns")
    crops.add_argument("--seed", type=SEED, default=0)
    crops.set_defaults(func=cmd_crops, out_kind="file")


def image_files(path: Path) -> list[Path]:
    from vaekit.data.files import IMAGE_SUFFIXES
    from vaekit.errors import DataError

    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return files
    if not path.is_file():
        raise DataError(f"no image file or folder at {path}")
    return [path]


def read_image(path: Path, channels: int):
    """An image file as (1, C, H, W) in [0, 1], pixel for pixel; one clear error if it has the wrong
    channel count for the model or cannot be read."""
    import numpy as np
    import torch
    from PIL import Image

    from vaekit.data.files import GREY_MODES
    from vaekit.errors import DataError

    try:
        with Image.open(path) as im:
            grey = im.mode in GREY_MODES
            if grey != (channels == 1):
                raise DataError(f"{path} is a {'grey' if grey else 'colour'} image, but this model restores "
                                f"{'grey' if channels == 1 else 'colour'} images")
            array = np.asarray(im.convert("L" if grey else "RGB"), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"cannot read image {path}: {e}") from None
    x = torch.from_numpy(array.copy()).float().div_(255)
    return x[None, None] if channels == 1 else x.permute(2, 0, 1)[None]


def write_image(path: Path, image) -> Path:
    """(C, H, W) in [0, 1] -> an 8-bit image file, written atomically."""
    from vaekit.imaging import save_image

    array = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return save_image(path, array)


def output_path(out: Path, source: Path, folder: bool) -> Path:
    if folder or out.is_dir():
        return out / f"{source.stem}.png"
    return out


def process(args, work) -> None:
    """Load the run, then for each input image write work(model, x, tiles, generator, path) ->
    {suffix: (1, C, H, W)} to OUT (suffix "") and OUT with the suffix before its extension."""
    from contextlib import nullcontext

    import torch
    from tqdm.auto import tqdm

    from vaekit.engine.checkpoint import load_vae
    from vaekit.engine.files import staged_folder
    from vaekit.errors import DataError

    if args.threads:
        torch.set_num_threads(args.threads)
    run = load_vae(args.run)
    model, tiles = run.model, run.config.model.tiled
    source = Path(args.input)
    files = image_files(source)
    folder = source.is_dir()
    stems = [path.stem for path in files]
    if len(set(stems)) < len(stems):
        twin = next(stem for stem in stems if stems.count(stem) > 1)
        raise DataError(f"{source} holds two images named {twin} (different suffixes), which would be written "
                        f"to the same {twin}.png")
    out = Path(args.out)
    generator = torch.Generator().manual_seed(args.seed)
    with staged_folder(out) if folder else nullcontext(out) as dest:  # a folder's outputs arrive together
        for path in tqdm(files, desc=args.command, unit="image", disable=not folder):
            x = read_image(path, model.image_shape[0])
            target = output_path(dest, path, folder)
            for suffix, image in work(model, x, tiles, generator, path).items():
                write_image(target.with_name(f"{target.stem}{suffix}{target.suffix or '.png'}"), image[0])
    print(f"{args.command}: {len(files)} image{'s' if len(files) > 1 else ''} -> {out}")


def temperature(args) -> float:
    return 1.0 if args.sample else 0.0


def cmd_denoise(args) -> None:
    from vaekit.tasks.restore import denoise

    process(args, lambda model, x, tiles, g, path: {"": denoise(
        model, x, args.sigma, tiles=tiles, temperature=temperature(args), generator=g,
        ensemble=args.self_ensemble)})


def cmd_repair(args) -> None:
    from vaekit.tasks.restore import repair

    process(args, lambda model, x, tiles, g, path: {"": repair(
        model, x, tiles=tiles, temperature=temperature(args), generator=g)})


def cmd_upscale(args) -> None:
    from vaekit.tasks.restore import upscale

    process(args, lambda model, x, tiles, g, path: {"": upscale(
        model, x, args.scale, tiles=tiles, temperature=temperature(args), generator=g,
        ensemble=args.self_ensemble)})


def parse_box(text: str) -> tuple[int, int, int, int]:
    from vaekit.errors import VaekitError

    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise VaekitError(f"--box takes x,y,w,h as four integers, got {text!r}") from None
    return x, y, w, h


def mask_for(args, x, path: Path):
    """The (1, 1, H, W) hole for image `path`: the box, the one mask file, or its namesake in a folder."""
    from vaekit.errors import DataError
    from vaekit.tasks.inpaint import box_mask

    if args.box:
        return box_mask(x.shape[2], x.shape[3], parse_box(args.box))[None]
    mask_path = Path(args.mask)
    if mask_path.is_dir():
        matches = [p for p in image_files(mask_path) if p.stem == path.stem]
        if not matches:
            raise DataError(f"the mask folder {mask_path} has no mask named {path.stem} for {path}")
        mask_path = matches[0]
    elif not mask_path.is_file():
        raise DataError(f"no mask file or folder at {mask_path}")
    return (read_any(mask_path, 1)[None] >= 128).float()


def cmd_inpaint(args) -> None:
    from vaekit.tasks.inpaint import inpaint

    if args.box:
        parse_box(args.box)

    def work(model, x, tiles, g, path):
        result = inpaint(model, x, mask_for(args, x, path), args.samples, proposals=args.proposals, tiles=tiles,
                         generator=g)
        return {"": result.mean, **{f"_sample{i + 1}": s for i, s in enumerate(result.samples)}}

    process(args, work)


def cmd_crops(args) -> None:
    import numpy as np
    import torch

    from vaekit.engine.files import atomic_path
    from vaekit.errors import VaekitError
    from vaekit.tasks.restore import random_crops

    if Path(args.out).suffix != ".npy":  # what `vaekit train --data` reads it by
        raise VaekitError(f"the output {args.out} must be a .npy file")
    try:
        scales = tuple(float(v) for v in args.scales.split(","))
    except ValueError:
        raise VaekitError(f"--scales must be comma-separated numbers, got {args.scales!r}") from None
    images = [read_any(p, args.channels) for p in image_files(Path(args.folder))]
    crops = random_crops(images, args.size, args.count, torch.Generator().manual_seed(args.seed), scales,
                         args.orientations)
    out = Path(args.out)
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.save(f, crops.numpy())
    print(f"{out}: {len(crops)} crops of {args.size}x{args.size} from {len(images)} images")


def read_any(path: Path, channels: int):
    """An image file converted to `channels` (photos for crops, masks), uint8 (C, H, W)."""
    import numpy as np
    import torch
    from PIL import Image

    from vaekit.errors import DataError

    try:
        with Image.open(path) as im:
            array = np.asarray(im.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"cannot read image {path}: {e}") from None
    x = torch.from_numpy(array.copy())
    return x[None] if channels == 1 else x.permute(2, 0, 1)
