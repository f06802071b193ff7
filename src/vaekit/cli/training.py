"""`vaekit demo` and `vaekit train`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from vaekit.cli.values import COUNT

DEMO = {
    "data": {"data": "digits", "val_fraction": 0.15},
    "model": {"arch": "mlp", "latent_dim": 8, "hidden_dims": (256, 128)},
    "train": {"epochs": 200, "batch_size": 64, "lr": 2e-3, "lr_schedule": "cosine", "ema_decay": 0.99},
}


def register(sub) -> None:
    demo = sub.add_parser("demo", help="train a small VAE on built-in digits and write a report (no download)")
    demo.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo)")
    demo.add_argument("--epochs", type=COUNT, help=f"training epochs (default: {DEMO['train']['epochs']})")
    demo.set_defaults(func=cmd_demo, out_kind="folder")

    train = sub.add_parser("train", help="train a VAE from a YAML config and/or flags")
    train.add_argument("config", nargs="?", help="YAML file with data/model/train sections")
    train.add_argument("--out", help="run folder to write (default: runs/<data>-<model>, numbered if it exists)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override any config field, e.g. --set beta=4 (repeatable)")
    train.add_argument("--no-report", action="store_true", help="skip the pictures and index.html")
    add_config_flags(train)
    train.set_defaults(func=cmd_train, out_kind="folder")


def default_text(default, help: str) -> str:
    if default is None:
        return "auto" if "auto" in help else "none"
    return str(default)


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per config field, help and default taken from the field itself."""
    from vaekit.config import SECTION_CLASSES, config_fields

    groups = {s: parser.add_argument_group(f"{s} options") for s in SECTION_CLASSES}
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


def cmd_demo(args) -> None:
    from vaekit.api import train
    from vaekit.config import Config

    config = Config.from_dict(DEMO)
    if args.epochs:
        config = config.replace({"epochs": args.epochs})
    run = train(config, args.out)
    print_run(run.path)


def cmd_train(args) -> None:
    from vaekit.api import train
    from vaekit.config import Config
    from vaekit.engine.checkpoint import read_config
    from vaekit.errors import ConfigError

    if args.resume and not args.out:
        raise ConfigError("--resume needs --out: the run folder to continue")
    config = config_from_args(Config, args, read_config(args.out) if args.resume else None)
    run = train(config, args.out or fresh_run_dir(config), resume=args.resume, report=not args.no_report)
    print_run(run.path)


def config_from_args(config_class, args, saved=None):
    """defaults < YAML < flags < --set. A resumed run starts from its own `saved` config instead of
    the defaults, so later changes of vaekit's defaults do not stop it; what the YAML and flags set
    on top must still agree with it (the trainer checks)."""
    from vaekit.config import load_yaml
    from vaekit.errors import ConfigError

    sections = saved.to_dict() if saved is not None else {}
    for section, values in (load_yaml(args.config) if args.config else {}).items():
        sections[section] = {**sections.get(section, {}), **values} if isinstance(values, dict) else values
    config = config_class.from_dict(sections)
    config = config.replace({k: v for k, v in vars(args).items() if "." in k})
    for item in args.set:
        if "=" not in item:
            raise ConfigError(f"--set takes KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        config = config.replace({key.strip(): value.strip()})
    return config


def fresh_run_dir(config) -> Path:
    """runs/<data>-<model>, or the first free runs/<data>-<model>-N."""
    stem = f"{Path(config.data.data).name or 'data'}-{config.model.arch}"
    path, n = Path("runs") / stem, 2
    while path.exists():
        path, n = Path("runs") / f"{stem}-{n}", n + 1
    return path


def print_run(path: Path) -> None:
    print(f"\nrun folder: {path.resolve()}")
    for name in ("index.html", "samples.png", "reconstructions.png", "interpolation.png", "traversal.png",
                 "loss.png", "metrics.json", "metrics.jsonl", "checkpoint"):
        if (path / name).exists():
            print(f"  {path / name}")
    metrics = path / "metrics.json"
    if metrics.exists():
        m = json.loads(metrics.read_text())
        if "estimated_bpp" in m:  # a lossy codec: one rate and PSNR per quality level
            print(f"{m['split']}, per quality level: " + ", ".join(
                f"{q + 1}: {bpp:.3f} bpp {psnr:.2f} dB" for q, (bpp, psnr) in enumerate(zip(m["estimated_bpp"],
                                                                                             m["psnr_db"]))))
            return
        print(f"{m['split']}: negative ELBO {m['neg_elbo_nats']:.2f} nats, IWAE NLL (k={m.get('iwae_k')}) "
              f"{m.get('iwae_nll_nats', float('nan')):.2f} nats, {m['bits_per_dim']:.3f} bits/dim")
