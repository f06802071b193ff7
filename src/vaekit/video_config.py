"""Typed, strict configuration of a video run (`vaekit video train`): data, the SVG-LP model and
training, with the same rules as the image config (vaekit.config): unknown keys are an error, every
field is a flag, values are range-checked, and the checkpoint stores the whole config."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from vaekit.config import MAX_SEED, apply_overrides, option
from vaekit.errors import ConfigError


@dataclass(frozen=True)
class VideoDataConfig:
    data: str = option("moving-mnist", "moving-mnist (two MNIST digits bouncing in 64x64, made on the fly), or a "
                       "video file / folder of videos / folder of frames", flag="data")
    data_dir: str | None = option(None, "folder holding the MNIST IDX files (skips the download)")
    mirror: str | None = option(None, "base URL to download MNIST from (default: the public mirrors)")
    seq_len: int = option(20, "frames per training sequence", low=2)
    frame_size: int | None = option(None, "resize video frames to this square size (moving-mnist: 64)", low=8)
    channels: int | None = option(None, "convert video frames to 1 (grey) or 3 (RGB) channels", choices=(1, 3, None))


@dataclass(frozen=True)
class SVGConfig:
    widths: tuple[int, ...] = option((16, 32, 64), "conv widths of the frame encoder/decoder, one per 2x "
                                     "downsampling; frames are fold * 4 * 2^len(widths) pixels square")
    fold: int = option(2, "fold fold x fold pixel blocks into channels before the first convolution (cheap "
                       "downsampling: fold 2 makes a 64x64 model about 3x faster)", choices=(1, 2, 4))
    g_dim: int = option(128, "size of each frame's encoding h_t and of the predictor's output", low=1)
    z_dim: int = option(10, "latent dimensions per frame", low=1)
    rnn_dim: int = option(256, "hidden units of the three LSTMs (256 beat 128 on Moving MNIST at equal CPU time)",
                          low=1)
    predictor_layers: int = option(2, "LSTM layers of the frame predictor", low=1)
    latent_layers: int = option(1, "LSTM layers of the posterior and the learned prior", low=1)
    n_past: int = option(10, "context frames: the skip connections come from the last of them", low=1)
    frame_shape: tuple[int, ...] | None = option(None, "channels, height, width (set from the data)", cli=False,
                                                 low=1)

    def __post_init__(self):
        if not self.widths or min(self.widths) < 1:
            raise ConfigError(f"model.widths must be positive integers, got {self.widths}")


@dataclass(frozen=True)
class VideoTrainConfig:
    steps: int = option(12500, "training steps (batches of sequences); the cosine schedule ends here, so choose "
                        "what fits your time (12,500: about 2 hours on one CPU core at the defaults)", low=1)
    batch_size: int = option(16, "sequences per step", low=1)
    lr: float = option(2e-3, "learning rate (AdamW, as SVG's Adam)", low=0.0)
    lr_schedule: str = option("cosine", "learning-rate schedule after warm-up: cosine decays to 0 at `steps`",
                              choices=("constant", "cosine"))
    warmup_steps: int = option(0, "linear learning-rate warm-up steps", low=0)
    weight_decay: float = option(0.0, "AdamW weight decay", low=0.0)
    beta: float = option(0.4, "weight of KL(q||p) against the squared error summed over pixels (SVG's 1e-4 on "
                         "the per-pixel mean at 64x64 is 0.41)", low=0.0)
    grad_clip: float | None = option(None, "clip the gradient norm to this value", low=0.0)
    checkpoint_every: int = option(250, "steps between checkpoints (and validation); resume starts from one",
                                   low=1)
    max_minutes: float | None = option(None, "stop at the first checkpoint after this many minutes of training",
                                       low=0.0)
    seed: int = option(0, "seed for initialization, sequences and latent samples", low=0, high=MAX_SEED)
    threads: int | None = option(None, "torch CPU threads (default: torch's choice)", low=1)


SECTIONS = {"data": VideoDataConfig, "model": SVGConfig, "train": VideoTrainConfig}
RESUMABLE = {"train.steps", "train.threads", "train.max_minutes"}  # may change when resuming


@dataclass(frozen=True)
class VideoConfig:
    data: VideoDataConfig = field(default_factory=VideoDataConfig)
    model: SVGConfig = field(default_factory=SVGConfig)
    train: VideoTrainConfig = field(default_factory=VideoTrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "VideoConfig":
        return cls().replace(d)

    def replace(self, overrides: dict[str, Any]) -> "VideoConfig":
        """A copy with overrides: nested sections, `section.field`, field or flag names."""
        return apply_overrides(self, overrides, SECTIONS, "video config")
