"""What a trained video model makes: sampled futures of a clip, new clips, and the GIF/MP4 files
that show them (clips side by side, a timeline bar under them: grey while the frames are real
context, white once they are the model's)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from vaekit.data import load_dataset
from vaekit.data.video import has_ffmpeg, moving_mnist
from vaekit.engine.files import atomic_path
from vaekit.engine.video import VideoRun, VideoSource
from vaekit.errors import DataError, VaekitError
from vaekit.imaging import make_grid
from vaekit.models.svg import SVG

VIDEO_OUTPUTS = (".gif", ".mp4")
BAR_PIXELS = 3  # height of the timeline bar


def check_clip(model: SVG, clip: torch.Tensor, context: int, name: str = "the clip") -> torch.Tensor:
    """uint8 (T, C, H, W) from a file -> float (T, C, H, W) in [0, 1] for `model`, or a clear error."""
    c, h, w = model.frame_shape
    if context < 1:
        raise VaekitError(f"--context must be at least 1, got {context}")
    if tuple(clip.shape[-2:]) != (h, w):
        raise DataError(f"{name} has frames of {clip.shape[-2]}x{clip.shape[-1]} pixels; this model takes {h}x{w} "
                        "(resize the video first)")
    if len(clip) < context:
        raise DataError(f"{name} has {len(clip)} frames, fewer than the {context} context frames asked for")
    if clip.shape[1] != c:
        from vaekit.data.transforms import to_channels

        clip = to_channels(clip, c)
    return clip.float().div(255)


def predict_futures(model: SVG, clip: torch.Tensor, context: int, frames: int, samples: int,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """`samples` sampled continuations of the first `context` frames of clip (T, C, H, W) in [0, 1]:
    (samples, frames, C, H, W)."""
    return model.predict(clip[None, :context], frames, generator, samples=samples)[0]


def seed_frames(run: VideoRun, n: int, context: int, generator: torch.Generator) -> torch.Tensor:
    """Real frames to start new clips from, (n, context, C, H, W) in [0, 1]: fresh Moving MNIST
    sequences of MNIST test digits, or the openings of random clips from the run's videos."""
    d = run.config.data
    if d.data == "moving-mnist":
        digits = load_dataset("mnist", "test", data_dir=d.data_dir, mirror=d.mirror, progress=False).images
        return moving_mnist(digits, n, context, generator=generator).float().div_(255)
    clips = VideoSource(run.config, progress=False).clips
    if clips.shape[1] < context:
        raise DataError(f"the run's videos give clips of {clips.shape[1]} frames, fewer than --context {context}")
    return clips[torch.randint(0, len(clips), (n,), generator=generator), :context].float().div_(255)


def generate_clips(run: VideoRun, n: int, frames: int, context: int = 1,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """n new clips of `frames` frames: `context` real opening frames, the rest sampled from the
    learned prior. (n, frames, C, H, W) in [0, 1]."""
    if not 1 <= context < frames:
        raise VaekitError(f"--context must be at least 1 and below --frames ({frames}), got {context}")
    generator = generator or torch.Generator().manual_seed(0)
    start = seed_frames(run, n, context, generator)
    future = run.model.predict(start, frames - context, generator)[:, 0]
    return torch.cat([start, future], 1)


def side_by_side(clips: torch.Tensor, context: int, nrow: int | None = None) -> np.ndarray:
    """clips (N, T, C, H, W) in [0, 1] -> uint8 movie (T, H', W', C): the N clips in a grid, and a
    timeline bar under them (grey over the `context` real frames, white after)."""
    n, t = clips.shape[:2]
    nrow = nrow or (n if n <= 4 else math.ceil(math.sqrt(n)))
    movie = []
    for i in range(t):
        grid = make_grid(clips[:, i], nrow=nrow)  # (H', W', C)
        bar = np.zeros((BAR_PIXELS, grid.shape[1], grid.shape[2]), np.uint8)
        bar[:, : max(1, round((i + 1) / t * grid.shape[1]))] = 128 if i < context else 255
        movie.append(np.concatenate([grid, bar]))
    return np.stack(movie)


def check_output(path: str | Path) -> Path:
    """The output path, if vaekit can write a movie there (checked before any work is done)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_OUTPUTS:
        raise VaekitError(f"cannot write {path.name}: the output must end in {' or '.join(VIDEO_OUTPUTS)}")
    if suffix == ".mp4" and not has_ffmpeg():
        raise VaekitError("writing MP4 needs imageio's ffmpeg plugin: pip install imageio-ffmpeg "
                          "(or vaekit[video]), or write a .gif")
    return path


def write_video(path: str | Path, movie: np.ndarray, fps: float = 8.0) -> Path:
    """Write uint8 frames (T, H, W, C) as a looping GIF or an MP4 (H.264, needs imageio-ffmpeg),
    atomically: the file appears whole or not at all."""
    import imageio.v3 as iio

    path = check_output(path)
    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
        if suffix == ".gif":
            frames = movie[..., 0] if movie.shape[-1] == 1 else movie
            iio.imwrite(tmp, frames, extension=".gif", duration=1000 / fps, loop=0)
        else:
            frames = np.repeat(movie, 3, -1) if movie.shape[-1] == 1 else movie
            pad_h, pad_w = (-frames.shape[1]) % 16, (-frames.shape[2]) % 16  # H.264 wants 16-pixel blocks
            frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))
            # the temporary name ends in .tmp, so ffmpeg is told the container
            iio.imwrite(tmp, frames, extension=".mp4", plugin="FFMPEG", fps=fps, output_params=["-f", "mp4"])
    return path
