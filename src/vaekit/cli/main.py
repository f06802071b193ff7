"""`vaekit`: a thin shell over the Python API. Parse, call, print; foreseeable errors become one
sentence and exit code 2. Each command group registers its own subcommands."""
from __future__ import annotations

import argparse
import sys

from vaekit.cli import compress, evaluate, generate, latent, quality, restore, training, video

COMMAND_GROUPS = (training, generate, evaluate, quality, compress, latent, restore, video)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vaekit", description="Train and use variational autoencoders on images.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from vaekit.engine.files import check_writable
    from vaekit.errors import VaekitError

    command = " ".join(filter(None, (args.command, getattr(args, "video_command", None))))  # "video train"
    try:
        if getattr(args, "out", None) and getattr(args, "out_kind", None):
            check_writable(args.out, args.out_kind)  # before any slow work
        args.func(args)
    except VaekitError as e:
        print(f"vaekit {command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vaekit {command}: interrupted", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError) as e:  # any other RuntimeError is a bug and keeps its traceback
        if not out_of_memory(e):
            raise
        print(f"vaekit {command}: error: out of memory; ask for fewer images, steps or samples, or a smaller "
              "--batch-size", file=sys.stderr)
        return 2
    return 0


def out_of_memory(error: Exception) -> bool:
    """Python's MemoryError, torch's OutOfMemoryError (GPU) and its CPU allocator's RuntimeError
    ("can't allocate memory" on Linux and macOS, "not enough memory" on Windows)."""
    import torch

    return (isinstance(error, (MemoryError, torch.cuda.OutOfMemoryError))  # the latter: torch.OutOfMemoryError
            or any(words in str(error) for words in ("can't allocate memory", "not enough memory")))


if __name__ == "__main__":
    sys.exit(main())
