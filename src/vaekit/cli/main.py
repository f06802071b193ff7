"""`vaekit`: a thin shell over the Python API. Parse, call, print; foreseeable errors become one
sentence and exit code 2."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEMO = {
    "data": {"data": "digits", "val_fraction": 0.15},
    "model": {"arch": "mlp", "latent_dim": 8, "hidden_dims": (256, 128)},
    "train": {"epochs": 200, "batch_size": 64, "lr": 2e-3, "lr_schedule": "cosine", "ema_decay": 0.99},
}


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per config field, help and default taken from the field itself."""
    from vaekit.config import config_fields

    groups = {s: parser.add_argument_group(f"{s} options") for s in ("data", "model", "train")}
    for section, f, flag in config_fields():
        if not f.metadata["cli"]:
            continue
        default = f.default if not isinstance(f.default, tuple) else ",".join(map(str, f.default))
        kwargs = dict(dest=f"{section}.{f.name}", default=argparse.SUPPRESS,
                      help=f"{f.metadata['help']} (default: {default_text(default, f.metadata['help'])})")
        if "bool" in str(f.type):
            groups[section].add_argument(f"--{flag}", action=argparse.BooleanOptionalAction, **kwargs)
        else:
            choices = f.metadata["choices"]
            metavar = "{" + ",".join(str(c) for c in choices if c is not None) + "}" if choices else None
            groups[section].add_argument(f"--{flag}", metavar=metavar or flag.split("-")[-1].upper(), **kwargs)


def default_text(default, help: str) -> str:
    if default is None:
        return "auto" if "auto" in help else "none"
    return str(default)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vaekit", description="Train and use variational autoencoders on images.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="train a small VAE on built-in digits and write a report (no download)")
    demo.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo)")
    demo.add_argument("--epochs", type=int, help=f"training epochs (default: {DEMO['train']['epochs']})")

    train = sub.add_parser("train", help="train a VAE from a YAML config and/or flags")
    train.add_argument("config", nargs="?", help="YAML file with data/model/train sections")
    train.add_argument("--out", required=True, help="run folder to write")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override any config field, e.g. --set beta=4 (repeatable)")
    train.add_argument("--no-report", action="store_true", help="skip the pictures and index.html")
    add_config_flags(train)

    sample = sub.add_parser("sample", help="draw new images from a trained model")
    sample.add_argument("run")
    sample.add_argument("-n", type=int, default=64, help="number of images (default: 64)")
    sample.add_argument("-o", "--out", required=True, help="output image (PNG)")
    sample.add_argument("--temperature", type=float, default=1.0, help="prior standard deviation (default: 1)")
    sample.add_argument("--seed", type=int, default=0)

    recon = sub.add_parser("reconstruct", help="encode and decode images")
    recon.add_argument("run")
    recon.add_argument("images", nargs="+")
    recon.add_argument("-o", "--out", required=True, help="output folder")

    interp = sub.add_parser("interpolate", help="decode a path between two images' latent codes")
    interp.add_argument("run")
    interp.add_argument("a")
    interp.add_argument("b")
    interp.add_argument("-o", "--out", required=True, help="output image strip (PNG)")
    interp.add_argument("--steps", type=int, default=10)
    interp.add_argument("--spherical", action="store_true", help="spherical instead of linear interpolation")

    trav = sub.add_parser("traverse", help="vary one latent dimension at a time")
    trav.add_argument("run")
    trav.add_argument("-o", "--out", required=True, help="output grid (PNG)")
    trav.add_argument("--dims", help="comma-separated latent dims (default: the first 10)")
    trav.add_argument("--steps", type=int, default=9)
    trav.add_argument("--span", type=float, default=2.5, help="go from -span to +span (default: 2.5)")

    ev = sub.add_parser("eval", help="negative ELBO, IWAE NLL and bits/dim on a dataset split, as JSON")
    ev.add_argument("run")
    ev.add_argument("--data", help="dataset name or path (default: the run's training data)")
    ev.add_argument("--data-dir", help="folder holding existing IDX files")
    ev.add_argument("--split", default="test", choices=("train", "test"))
    ev.add_argument("--iwae", type=int, default=0, metavar="K", help="importance samples for the IWAE NLL (0: skip)")
    ev.add_argument("--batch-size", type=int, default=500)
    ev.add_argument("--limit", type=int, help="evaluate only the first N images")
    ev.add_argument("--no-binarize", action="store_true",
                    help="score grey levels as they are (default: binarize once with seed 0 for Bernoulli models)")
    ev.add_argument("--seed", type=int, default=0, help="seed for the posterior samples")
    ev.add_argument("--threads", type=int, help="torch CPU threads")
    ev.add_argument("-o", "--out", help="also write the JSON to this file")
    return p


def cmd_demo(args) -> None:
    from vaekit.api import train
    from vaekit.config import Config

    config = Config.from_dict(DEMO)
    if args.epochs:
        config = config.replace({"epochs": args.epochs})
    run = train(config, args.out)
    print_run(run.path)


def print_run(path: Path) -> None:
    print(f"\nrun folder: {path.resolve()}")
    for name in ("index.html", "samples.png", "reconstructions.png", "interpolation.png", "traversal.png",
                 "loss.png", "metrics.json", "metrics.jsonl", "checkpoint"):
        if (path / name).exists():
            print(f"  {path / name}")
    metrics = path / "metrics.json"
    if metrics.exists():
        m = json.loads(metrics.read_text())
        print(f"held-out negative ELBO {m['neg_elbo_nats']:.2f} nats, IWAE NLL (k={m.get('iwae_k')}) "
              f"{m.get('iwae_nll_nats', float('nan')):.2f} nats, {m['bits_per_dim']:.3f} bits/dim")


def cmd_train(args) -> None:
    from vaekit.api import train
    from vaekit.config import Config, load_yaml
    from vaekit.errors import ConfigError

    overrides = load_yaml(args.config) if args.config else {}
    config = Config.from_dict(overrides)
    flags = {k: v for k, v in vars(args).items() if "." in k}
    config = config.replace(flags)
    for item in args.set:
        if "=" not in item:
            raise ConfigError(f"--set takes KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        config = config.replace({key.strip(): value.strip()})
    run = train(config, args.out, resume=args.resume, report=not args.no_report)
    print_run(run.path)


def cmd_sample(args) -> None:
    import torch

    from vaekit.api import load
    from vaekit.imaging import save_grid

    model = load(args.run).model
    images = model.sample(args.n, args.temperature, torch.Generator().manual_seed(args.seed))
    print(save_grid(args.out, images))


def cmd_reconstruct(args) -> None:
    import torch

    from vaekit.api import load
    from vaekit.imaging import load_image, make_grid, save_grid, save_image

    model = load(args.run).model
    x = torch.stack([load_image(p, model.image_shape) for p in args.images])
    x_hat = model.reconstruct(x)
    out = Path(args.out)
    for path, image in zip(args.images, x_hat):
        save_image(out / f"{Path(path).stem}_recon.png", make_grid(image[None], padding=0, min_cell=1))
    print(save_grid(out / "comparison.png", torch.cat([x, x_hat]), nrow=len(x)))


def cmd_interpolate(args) -> None:
    from vaekit.api import load
    from vaekit.imaging import load_image, save_grid
    from vaekit.tasks.generate import interpolate

    model = load(args.run).model
    a, b = (load_image(p, model.image_shape) for p in (args.a, args.b))
    print(save_grid(args.out, interpolate(model, a, b, args.steps, args.spherical), nrow=args.steps))


def cmd_traverse(args) -> None:
    from vaekit.api import load
    from vaekit.errors import VaekitError
    from vaekit.imaging import save_grid
    from vaekit.tasks.generate import traverse

    model = load(args.run).model
    dims = [int(d) for d in args.dims.split(",")] if args.dims else None
    if dims and not all(0 <= d < model.latent_dim for d in dims):
        raise VaekitError(f"--dims must lie in 0..{model.latent_dim - 1}")
    print(save_grid(args.out, traverse(model, dims, args.steps, args.span), nrow=args.steps))


def cmd_eval(args) -> None:
    import torch

    from vaekit.api import load
    from vaekit.data import load_dataset
    from vaekit.engine.files import write_json
    from vaekit.metrics import evaluate
    from vaekit.report import prepare_eval_images

    if args.threads:
        torch.set_num_threads(args.threads)
    run = load(args.run)
    d = run.config.data
    c, h, _ = run.model.image_shape
    dataset = load_dataset(args.data or d.data, args.split, data_dir=args.data_dir or d.data_dir,
                           image_size=d.image_size, channels=c)
    images = dataset.images[: args.limit] if args.limit else dataset.images
    run.model.check_images(images)
    binarize = run.config.model.likelihood == "bernoulli" and not args.no_binarize
    result = {"data": args.data or d.data, "split": args.split, "binarized": binarize,
              **evaluate(run.model, prepare_eval_images(images, binarize), iwae_k=args.iwae,
                         batch_size=args.batch_size, generator=torch.Generator().manual_seed(args.seed))}
    if args.out:
        write_json(args.out, result)
    print(json.dumps(result, indent=2))


COMMANDS = {"demo": cmd_demo, "train": cmd_train, "sample": cmd_sample, "reconstruct": cmd_reconstruct,
            "interpolate": cmd_interpolate, "traverse": cmd_traverse, "eval": cmd_eval}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from vaekit.errors import VaekitError

    try:
        COMMANDS[args.command](args)
    except VaekitError as e:
        print(f"vaekit {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vaekit {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
