"""Video data as uint8 tensors (N, T, C, H, W): Moving MNIST made on the fly, and clips read from
video files (GIF, MP4, ...) or folders of frames with imageio.

    digits = load_dataset("mnist", "train").images          # (60000, 1, 28, 28)
    x = moving_mnist(digits, 16, generator=g)               # (16, 20, 1, 64, 64), a fresh batch
    test = moving_mnist_test_set(load_dataset("mnist", "test").images)  # the fixed 1,000
    clip = read_video("walk.gif")                           # (T, C, H, W)

Moving MNIST follows Srivastava et al. (2015): two 28x28 digits in a 64x64 frame, each moving at
a constant speed in a random direction and bouncing off the edges, combined by pixel-wise maximum.
The trajectories have a closed form (a triangle wave folds the straight path back into the
frame), and each frame is drawn with one scatter over all digits of the batch, so a batch costs a
few tensor operations however long the sequences are.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from vaekit.data.transforms import resize_square, to_channels
from vaekit.errors import DataError, first_line

FRAME_SIZE = 64  # Moving MNIST's frame side
SEQ_LEN = 20  # its sequence length
DIGITS_PER_SEQUENCE = 2
SPEED = 0.1  # Srivastava's step: a tenth of the free range (36 px) per frame, 3.6 px
TEST_SEED = 20260  # the fixed test set; never changes with a run's seed
TEST_SIZE = 1000
RENDER_CHUNK = 64  # sequences drawn per scatter
VIDEO_SUFFIXES = (".gif", ".mp4", ".avi", ".mov", ".mkv", ".webm", ".webp", ".apng")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def bounce(start: torch.Tensor, velocity: torch.Tensor, steps: torch.Tensor, high: float) -> torch.Tensor:
    """Positions of points moving at constant `velocity` from `start` inside [0, high], reflected at
    both ends: p + v t folded into [0, high] by a triangle wave. start, velocity (...); -> (..., T)."""
    path = start[..., None] + velocity[..., None] * steps  # (..., T)
    folded = torch.remainder(path, 2 * high)
    return torch.where(folded > high, 2 * high - folded, folded)


def moving_mnist(digits: torch.Tensor, n: int, seq_len: int = SEQ_LEN, size: int = FRAME_SIZE,
                 generator: torch.Generator | None = None, num_digits: int = DIGITS_PER_SEQUENCE) -> torch.Tensor:
    """n sequences of `num_digits` digits (drawn from `digits`, uint8 (M, 1, h, w)) bouncing in a
    size x size frame: uint8 (n, seq_len, 1, size, size)."""
    if digits.dim() != 4 or digits.shape[1] != 1 or len(digits) == 0:
        raise DataError("Moving MNIST needs grey digit images of shape (N, 1, H, W)")
    h, w = digits.shape[2:]
    if h > size or w > size:
        raise DataError(f"digits of {h}x{w} do not fit in a {size}x{size} frame")
    free = torch.tensor([size - h, size - w], dtype=torch.float32)  # free range of the top-left corner
    which = torch.randint(0, len(digits), (n, num_digits), generator=generator)
    start = torch.rand(n, num_digits, 2, generator=generator) * free
    angle = torch.rand(n, num_digits, generator=generator) * 2 * math.pi
    velocity = torch.stack([torch.sin(angle), torch.cos(angle)], -1) * SPEED * free  # (n, k, 2) rows, cols
    steps = torch.arange(seq_len, dtype=torch.float32)
    top = bounce(start[..., 0], velocity[..., 0], steps, float(free[0])).round().long()  # (n, k, T)
    left = bounce(start[..., 1], velocity[..., 1], steps, float(free[1])).round().long()
    out = torch.empty(n, seq_len, 1, size, size, dtype=torch.uint8)
    for s in range(0, n, RENDER_CHUNK):  # bounds the index tensor's memory (8 bytes per digit pixel)
        out[s:s + RENDER_CHUNK] = render(digits[which[s:s + RENDER_CHUNK].flatten(), 0], top[s:s + RENDER_CHUNK],
                                         left[s:s + RENDER_CHUNK], size)
    return out


def render(digits: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: int) -> torch.Tensor:
    """Draw digits (n*k, h, w) with top-left corners top, left (n, k, T) into size x size frames,
    overlaps by maximum, in one scatter: uint8 (n, T, 1, size, size)."""
    n, k, t = top.shape
    h, w = digits.shape[1:]
    rows = torch.arange(h).repeat_interleave(w)
    cols = torch.arange(w).repeat(h)
    index = (top.transpose(1, 2)[..., None] + rows) * size + left.transpose(1, 2)[..., None] + cols  # (n, T, k, h*w)
    values = digits.reshape(n, 1, k, h * w).expand(n, t, k, h * w)
    canvas = torch.zeros(n * t, size * size, dtype=torch.uint8)
    canvas.scatter_reduce_(1, index.reshape(n * t, -1), values.reshape(n * t, -1), reduce="amax")
    return canvas.view(n, t, 1, size, size)


def moving_mnist_test_set(test_digits: torch.Tensor, n: int = TEST_SIZE, seq_len: int = SEQ_LEN) -> torch.Tensor:
    """The fixed evaluation set: `n` sequences from the MNIST test digits, seeded so that every run
    and every machine scores the same clips. uint8 (n, seq_len, 1, 64, 64)."""
    return moving_mnist(test_digits, n, seq_len, generator=torch.Generator().manual_seed(TEST_SEED))


def read_video(path: str | Path) -> torch.Tensor:
    """A video file or a folder of frame images (sorted by name) as uint8 (T, C, H, W), C in {1, 3}.
    MP4 and other ffmpeg formats need imageio's ffmpeg plugin (`pip install vaekit[video]`)."""
    path = Path(path)
    if path.is_dir():
        frames = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
        if not frames:
            raise DataError(f"{path} holds no frame images ({', '.join(FRAME_SUFFIXES)})")
        arrays = [_read_frames(p)[0] for p in frames]
        if len({a.shape for a in arrays}) > 1:
            raise DataError(f"the frames in {path} differ in size")
        array = np.stack(arrays)
    elif path.is_file():
        array = _read_frames(path)
    else:
        raise DataError(f"no video file or frame folder at {path}")
    return _to_tensor(array, path)


def _read_frames(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    try:
        array = np.asarray(iio.imread(path, index=None))
    except (ImportError, RuntimeError) as e:  # imageio's answer when no installed plugin reads the format
        if path.suffix.lower() in (".mp4", ".avi", ".mov", ".mkv", ".webm") and not has_ffmpeg():
            raise DataError(f"reading {path.suffix} video needs imageio's ffmpeg plugin: "
                            "pip install imageio-ffmpeg (or vaekit[video])") from None
        raise DataError(f"cannot read video {path}: {reason(e)}") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise DataError(f"cannot read video {path}: {reason(e)}") from None
    if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4) and path.suffix.lower() in FRAME_SUFFIXES):
        array = array[None]  # one still image
    return array


def reason(error: Exception) -> str:
    """imageio's reason, without the lines of plugins it suggests installing after it."""
    text = first_line(error)
    return "no installed reader recognises it (corrupt, or not a video)" if "Could not find a backend" in text else text


def _to_tensor(array: np.ndarray, path: Path) -> torch.Tensor:
    """(T, H, W) or (T, H, W, C) of any integer/float type -> uint8 (T, C, H, W) with C in {1, 3}."""
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 2, 3, 4):
        raise DataError(f"{path} does not hold frames of shape (T, H, W[, C]); got {array.shape}")
    if array.dtype != np.uint8:
        if array.dtype == np.uint16:
            array = (array >> 8).astype(np.uint8)
        elif np.issubdtype(array.dtype, np.floating):
            array = (np.clip(array, 0, 1) * 255 + 0.5).astype(np.uint8)
        else:
            raise DataError(f"{path} has frames of type {array.dtype}; expected 8-bit")
    array = array[..., :3] if array.shape[-1] == 4 else array[..., :1] if array.shape[-1] == 2 else array
    x = torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2)
    if x.shape[1] == 3 and bool((x[:, 0] == x[:, 1]).all() and (x[:, 1] == x[:, 2]).all()):
        x = x[:, :1]  # grey frames stored as RGB (GIF) come back grey
    return x.contiguous()


def has_ffmpeg() -> bool:
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return False
    return True


def fit_frames(clip: torch.Tensor, channels: int, size: int | None) -> torch.Tensor:
    """uint8 (T, C, H, W) converted to `channels` and, when `size` is given, resized to size x size."""
    clip = to_channels(clip, channels)
    if size is not None and tuple(clip.shape[-2:]) != (size, size):
        clip = resize_square(clip, size)
    return clip


def load_video_clips(path: str | Path, seq_len: int, size: int | None = None,
                     channels: int | None = None) -> torch.Tensor:
    """Training clips from a video file, a folder of videos, a folder of frames, or a folder of
    frame folders: each video cut into non-overlapping clips of `seq_len` frames, resized to
    size x size (shorter side, then centre crop) and converted to `channels`. uint8 (N, T, C, H, W)."""
    path = Path(path)
    if path.is_file():
        sources = [path]
    elif path.is_dir():
        sources = sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES or p.is_dir())
        if not sources:
            sources = [path]  # the folder itself holds the frames of one video
    else:
        raise DataError(f"no video file or folder at {path}")
    videos = [read_video(p) for p in sources]
    channels = channels or (3 if any(v.shape[1] == 3 for v in videos) else 1)
    clips = []
    for video in videos:
        video = fit_frames(video, channels, size)
        whole = len(video) // seq_len * seq_len
        if whole:
            clips.append(video[:whole].reshape(-1, seq_len, *video.shape[1:]))
    if not clips:
        raise DataError(f"no video in {path} has {seq_len} frames (the training sequence length)")
    shapes = {tuple(c.shape[2:]) for c in clips}
    if len(shapes) > 1:
        raise DataError(f"the videos in {path} differ in frame size; set the frame size to resize them")
    return torch.cat(clips).contiguous()
