"""`vaekit sample | reconstruct | interpolate | traverse`: what a trained model makes."""
from __future__ import annotations

from pathlib import Path

from vaekit.cli.values import COUNT, SEED, number, whole, whole_list


def register(sub) -> None:
    sample = sub.add_parser("sample", help="draw new images from a trained model")
    sample.add_argument("run")
    sample.add_argument("-n", type=COUNT, default=64, help="number of images (default: 64)")
    sample.add_argument("-o", "--out", required=True, help="output image (PNG)")
    sample.add_argument("--temperature", type=number(low=0.0), default=1.0,
                        help="prior standard deviation (default: 1)")
    sample.add_argument("--seed", type=SEED, default=0)
    sample.set_defaults(func=cmd_sample, out_kind="file")

    recon = sub.add_parser("reconstruct", help="encode and decode images")
    recon.add_argument("run")
    recon.add_argument("images", nargs="+")
    recon.add_argument("-o", "--out", required=True, help="output folder")
    recon.set_defaults(func=cmd_reconstruct, out_kind="folder")

    interp = sub.add_parser("interpolate", help="decode a path between two images' latent codes")
    interp.add_argument("run")
    interp.add_argument("a")
    interp.add_argument("b")
    interp.add_argument("-o", "--out", required=True, help="output image strip (PNG)")
    interp.add_argument("--steps", type=whole(2), default=10, help="images in the strip, both ends included")
    interp.add_argument("--spherical", action="store_true", help="spherical instead of linear interpolation")
    interp.set_defaults(func=cmd_interpolate, out_kind="file")

    trav = sub.add_parser("traverse", help="vary one latent dimension at a time")
    trav.add_argument("run")
    trav.add_argument("-o", "--out", required=True, help="output grid (PNG)")
    trav.add_argument("--dims", type=whole_list, help="comma-separated latent dims (default: the first 10)")
    trav.add_argument("--steps", type=COUNT, default=9, help="images per dimension")
    trav.add_argument("--span", type=number(above=0.0), default=2.5, help="go from -span to +span (default: 2.5)")
    trav.set_defaults(func=cmd_traverse, out_kind="file")


def cmd_sample(args) -> None:
    import torch

    from vaekit.engine.checkpoint import load_vae
    from vaekit.imaging import save_grid

    model = load_vae(args.run).model
    images = model.sample(args.n, args.temperature, torch.Generator().manual_seed(args.seed))
    print(save_grid(args.out, images))


def cmd_reconstruct(args) -> None:
    import torch

    from vaekit.engine.checkpoint import load_vae
    from vaekit.engine.files import staged_folder
    from vaekit.errors import VaekitError
    from vaekit.imaging import load_image, make_grid, save_grid, save_image

    names = [f"{Path(p).stem}_recon.png" for p in args.images]
    if len(set(names)) < len(names):
        raise VaekitError("two input images share a name, so their reconstructions would overwrite each other")
    model = load_vae(args.run).model
    x = torch.stack([load_image(p, model.image_shape) for p in args.images])
    x_hat = model.reconstruct(x)
    with staged_folder(args.out) as staged:  # the files appear together
        for name, image in zip(names, x_hat):
            save_image(staged / name, make_grid(image[None], padding=0, min_cell=1))
        save_grid(staged / "comparison.png", torch.cat([x, x_hat]), nrow=len(x))
    print(Path(args.out) / "comparison.png")


def cmd_interpolate(args) -> None:
    from vaekit.engine.checkpoint import load_vae
    from vaekit.imaging import load_image, save_grid
    from vaekit.tasks.generate import interpolate

    model = load_vae(args.run).model
    a, b = (load_image(p, model.image_shape) for p in (args.a, args.b))
    print(save_grid(args.out, interpolate(model, a, b, args.steps, args.spherical), nrow=args.steps))


def cmd_traverse(args) -> None:
    from vaekit.engine.checkpoint import load_vae
    from vaekit.errors import VaekitError
    from vaekit.imaging import save_grid
    from vaekit.tasks.generate import traverse

    model = load_vae(args.run).model
    dims = args.dims
    if dims and not all(d < model.latent_dim for d in dims):
        raise VaekitError(f"--dims must lie in 0..{model.latent_dim - 1}")
    print(save_grid(args.out, traverse(model, dims, args.steps, args.span), nrow=args.steps))
