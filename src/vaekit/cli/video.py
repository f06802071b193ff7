"""`vaekit video train | generate | predict`: sequential VAEs (SVG-LP) on Moving MNIST or videos."""
from __future__ import annotations

import argparse
from pathlib import Path

from vaekit.cli.values import COUNT, SEED, number


def register(sub) -> None:
    video = sub.add_parser("video", help="train a sequential VAE on videos; generate clips and predict futures")
    vsub = video.add_subparsers(dest="video_command", required=True, metavar="COMMAND")

    train = vsub.add_parser("train", help="train SVG-LP (learned-prior sequential VAE) from a YAML config and/or flags")
    train.add_argument("config", nargs="?", help="YAML file with data/model/train sections")
    train.add_argument("--out", default="runs/video", help="run folder (default: runs/video)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override any video config field, e.g. --set beta=1 (repeatable)")
    add_video_flags(train)
    train.set_defaults(func=cmd_train, out_kind="folder")

    gen = vsub.add_parser("generate", help="new clips: real opening frames, the rest sampled from the learned prior")
    gen.add_argument("run")
    gen.add_argument("-n", type=COUNT, default=4, help="number of clips, shown side by side (default: 4)")
    gen.add_argument("--frames", type=COUNT, default=30,
                     help="frames per clip, the opening ones included (default: 30)")
    gen.add_argument("--context", type=COUNT, default=1,
                     help="real opening frames (fresh Moving MNIST, or the run's videos) (default: 1)")
    gen.add_argument("-o", "--out", required=True, help="output movie: .gif, or .mp4 (needs imageio-ffmpeg)")
    gen.add_argument("--fps", type=number(above=0.0), default=8.0, help="frames per second (default: 8)")
    gen.add_argument("--seed", type=SEED, default=0)
    gen.set_defaults(func=cmd_generate, out_kind="file")

    pred = vsub.add_parser("predict", help="several sampled futures of a clip, side by side")
    pred.add_argument("run")
    pred.add_argument("clip", help="video file (.gif, .mp4 ...) or folder of frame images")
    pred.add_argument("--context", type=COUNT, default=10, help="frames of the clip the model sees (default: 10)")
    pred.add_argument("--frames", type=COUNT, default=10, help="frames to predict (default: 10)")
    pred.add_argument("--samples", type=COUNT, default=3, help="sampled futures (default: 3)")
    pred.add_argument("-o", "--out", required=True, help="output movie: .gif, or .mp4 (needs imageio-ffmpeg)")
    pred.add_argument("--fps", type=number(above=0.0), default=8.0, help="frames per second (default: 8)")
    pred.add_argument("--seed", type=SEED, default=0)
    pred.set_defaults(func=cmd_predict, out_kind="file")


def add_video_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per video config field, help and default taken from the field itself."""
    from vaekit.cli.training import default_text
    from vaekit.config import config_fields
    from vaekit.video_config import SECTIONS

    groups = {s: parser.add_argument_group(f"{s} options") for s in SECTIONS}
    for section, f, flag in config_fields(SECTIONS):
        if not f.metadata["cli"]:
            continue
        default = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
        kwargs = dict(dest=f"{section}.{f.name}", default=argparse.SUPPRESS,
                      help=f"{f.metadata['help']} (default: {default_text(default, f.metadata['help'])})")
        choices = f.metadata["choices"]
        metavar = "{" + ",".join(str(c) for c in choices if c is not None) + "}" if choices else None
        groups[section].add_argument(f"--{flag}", metavar=metavar or flag.split("-")[-1].upper(), **kwargs)


def cmd_train(args) -> None:
    from vaekit.cli.training import config_from_args
    from vaekit.engine.video import fit_video, read_video_config
    from vaekit.video_config import VideoConfig

    config = config_from_args(VideoConfig, args, read_video_config(args.out) if args.resume else None)
    run = fit_video(config, args.out, resume=args.resume)
    print(f"\nrun folder: {Path(run.path).resolve()}")
    if run.history:
        h = run.history[-1]
        print(f"step {h['step']}: validation squared error {h['val_sse_per_frame']:.1f} per frame (teacher-forced), "
              f"{h['seconds'] / 60:.1f} min of training")


def cmd_generate(args) -> None:
    import torch

    from vaekit.engine.video import load_video
    from vaekit.tasks.video import check_output, generate_clips, side_by_side, write_video

    check_output(args.out)
    run = load_video(args.run)
    clips = generate_clips(run, args.n, args.frames, args.context, torch.Generator().manual_seed(args.seed))
    print(write_video(args.out, side_by_side(clips, args.context), args.fps))


def cmd_predict(args) -> None:
    import torch

    from vaekit.data.video import read_video
    from vaekit.engine.video import load_video
    from vaekit.tasks.video import check_clip, check_output, predict_futures, side_by_side, write_video

    check_output(args.out)
    run = load_video(args.run)
    clip = check_clip(run.model, read_video(args.clip), args.context, name=args.clip)
    futures = predict_futures(run.model, clip, args.context, args.frames, args.samples,
                              torch.Generator().manual_seed(args.seed))  # (S, F, C, H, W)
    context = clip[None, :args.context].expand(args.samples, -1, -1, -1, -1)
    panels = torch.cat([context, futures], 1)
    truth = len(clip) >= args.context + args.frames
    if truth:  # the real continuation first, then the samples
        panels = torch.cat([clip[None, :args.context + args.frames], panels])
    print(write_video(args.out, side_by_side(panels, args.context, nrow=len(panels)), args.fps))
    print(f"{args.context} context frames, then {args.frames} predicted; panels: "
          + ("the real clip, " if truth else "") + f"{args.samples} sampled futures")
