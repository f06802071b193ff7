"""Training and run folders for video models (`vaekit video train`), on the image trainer's rules:
AdamW, a non-finite guard, checkpoints in safetensors + JSON written atomically, exact resume.

Moving MNIST has no epochs (every batch is new), so a run is counted in steps and checkpointed
every `checkpoint_every` steps; each such chunk draws its batches from its own generator
(seed, chunk), so a resumed run sees exactly what an unbroken one would have.

RUN/checkpoint/config.json        {"format", "kind": "video", data, model, train}
RUN/checkpoint/model.safetensors  the weights (batch-norm statistics included)
RUN/checkpoint/optimizer.safetensors + state.json   what `--resume` needs
RUN/metrics.jsonl                 one line per checkpoint
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from vaekit.data import load_dataset
from vaekit.data.video import FRAME_SIZE, load_video_clips, moving_mnist
from vaekit.engine import checkpoint
from vaekit.engine.batches import epoch_generator
from vaekit.engine.files import atomic_dir, write_text
from vaekit.engine.trainer import lr_factor, make_optimizer, set_lr
from vaekit.errors import CheckpointError, ConfigError, TrainingError, VaekitError
from vaekit.losses import video_loss
from vaekit.models.svg import SVG, build_svg
from vaekit.video_config import RESUMABLE, VideoConfig

# the counters a resumed video run continues from
VIDEO_STATE = {"step": int, "seconds": (int, float), "cpu_seconds": (int, float), "nonfinite_steps": int,
               "history": list}

FORMAT = 1
KIND = "video"
VALIDATION_SEED = 54321  # the validation clips never move with the training seed
VALIDATION_CLIPS = 64


class VideoSource:
    """Where training clips come from: Moving MNIST made on the fly from digits, or fixed clips
    cut from video files. `batch(n, generator)` -> float (n, T, C, H, W) in [0, 1]."""

    def __init__(self, config: VideoConfig, progress: bool = True):
        d = config.data
        self.seq_len = d.seq_len
        if d.data == "moving-mnist":
            if d.frame_size not in (None, FRAME_SIZE) or d.channels not in (None, 1):
                raise ConfigError("moving-mnist frames are 64x64 and grey; leave frame_size and channels unset")
            self.digits = load_dataset("mnist", "train", data_dir=d.data_dir, mirror=d.mirror,
                                       progress=progress).images
            self.clips = None
        else:
            self.digits = None
            self.clips = load_video_clips(d.data, d.seq_len, d.frame_size, d.channels)

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return (1, FRAME_SIZE, FRAME_SIZE) if self.clips is None else tuple(self.clips.shape[2:])

    def batch(self, n: int, generator: torch.Generator) -> torch.Tensor:
        if self.clips is None:
            x = moving_mnist(self.digits, n, self.seq_len, generator=generator)
        else:
            x = self.clips[torch.randint(0, len(self.clips), (n,), generator=generator)]
        return x.float().div_(255)

    def validation(self) -> torch.Tensor:
        """Fixed held-out clips for the per-checkpoint score (training digits, its own seed)."""
        return self.batch(VALIDATION_CLIPS, torch.Generator().manual_seed(VALIDATION_SEED))


@dataclass
class VideoRun:
    """A trained video model with its config and history, as `load_video` returns it."""

    path: Path
    config: VideoConfig
    model: SVG
    history: list[dict]


def build_video_model(config: VideoConfig) -> SVG:
    m = config.model
    if m.frame_shape is None or len(m.frame_shape) != 3:
        raise ConfigError("model.frame_shape (channels, height, width) must be set before building the model")
    if m.n_past >= config.data.seq_len:
        raise ConfigError(f"model.n_past ({m.n_past}) must be below data.seq_len ({config.data.seq_len})")
    side = m.fold * 4 << len(m.widths)
    if tuple(m.frame_shape[1:]) != (side, side):
        raise ConfigError(f"this model (widths {','.join(map(str, m.widths))}, fold {m.fold}) takes {side}x{side} "
                          f"frames, and the data's are {m.frame_shape[1]}x{m.frame_shape[2]}; set --frame-size {side} "
                          "or change --widths / --fold")
    return build_svg(tuple(m.frame_shape), m.widths, m.g_dim, m.z_dim, m.rnn_dim, m.predictor_layers,
                     m.latent_layers, m.n_past, m.fold)


def fit_video(config: VideoConfig, run_dir: str | Path, *, resume: bool = False, progress: bool = True,
              source: VideoSource | None = None) -> VideoRun:
    """Train the SVG-LP model `config` describes and keep it in `run_dir`; returns the loaded run."""
    run_dir = Path(run_dir)
    has_run = (checkpoint.checkpoint_dir(run_dir) / "model.safetensors").is_file()
    if resume and not has_run:
        raise CheckpointError(f"nothing to resume: {run_dir} holds no checkpoint")
    if not resume and has_run:
        raise CheckpointError(f"{run_dir} already holds a trained run; pass --resume to continue it "
                              "or choose another --out")
    tc = config.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    source = source or VideoSource(config, progress)
    config = config.replace({"model.frame_shape": source.frame_shape})
    if resume:
        check_same_video_run(read_video_config(run_dir), config, run_dir)
    torch.manual_seed(tc.seed)
    model = build_video_model(config)
    optimizer = make_optimizer(model, tc)
    state = {"step": 0, "seconds": 0.0, "cpu_seconds": 0.0, "nonfinite_steps": 0, "history": []}
    val = source.validation()
    if resume:
        state = load_video_training_state(run_dir, model, optimizer)
    else:  # start the decoder at the mean pixel, past the slow phase of learning the background
        p = val.mean().clamp(1e-3, 1 - 1e-3)
        with torch.no_grad():
            model.decoder.output_bias.fill_(torch.log(p / (1 - p)).item())
    started = time.perf_counter()
    bar = tqdm(total=tc.steps, initial=state["step"], desc="training", unit="step", disable=not progress)
    while state["step"] < tc.steps:
        if tc.max_minutes is not None and (time.perf_counter() - started) / 60 >= tc.max_minutes:
            break
        chunk = state["step"] // tc.checkpoint_every
        g = epoch_generator(tc.seed, chunk)
        end = min(tc.steps, (chunk + 1) * tc.checkpoint_every)
        chunk_start, cpu_start, sums = time.perf_counter(), time.process_time(), torch.zeros(3)
        while state["step"] < end:
            x = source.batch(tc.batch_size, g)
            set_lr(optimizer, tc.lr * lr_factor(state["step"], tc.steps, tc))
            out = model(x, generator=g)
            terms = video_loss(out.x_hat, out.kl, x[:, 1:], tc.beta)
            optimizer.zero_grad(set_to_none=True)
            terms.loss.backward()
            if not update_is_sound(model, terms.loss, state, tc, run_dir):
                continue
            optimizer.step()
            state["step"] += 1
            sums += torch.stack([terms.sse_per_frame, terms.kl_nats_per_frame, torch.tensor(1.0)])
            bar.update(1)
            bar.set_postfix(sse=f"{terms.sse_per_frame.item():.1f}", kl=f"{terms.kl_nats_per_frame.item():.2f}")
        state["seconds"] += time.perf_counter() - chunk_start
        state["cpu_seconds"] += time.process_time() - cpu_start  # below `seconds` on a shared machine
        end_chunk(run_dir, config, model, optimizer, state, sums, val, progress)
    bar.close()
    return load_video(run_dir)


def update_is_sound(model: SVG, loss: torch.Tensor, state: dict, tc, run_dir: Path) -> bool:
    """False (and counted) for a non-finite loss or gradient; gives up clearly after too many."""
    ok = math.isfinite(loss.item())
    if tc.grad_clip:
        ok = ok and math.isfinite(torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip).item())
    if not ok:
        state["nonfinite_steps"] += 1
        if state["nonfinite_steps"] > 20:
            raise TrainingError(f"training stopped at step {state['step']}: 20 steps had a non-finite loss or "
                                f"gradient; the last good checkpoint is in {run_dir} (try a lower --lr or "
                                "set --grad-clip)")
    return ok


@torch.no_grad()
def validate(model: SVG, val: torch.Tensor, beta: float) -> dict:
    """Teacher-forced squared error and KL per frame on the fixed validation clips."""
    model.eval()
    out = model(val, generator=torch.Generator().manual_seed(0))
    terms = video_loss(out.x_hat, out.kl, val[:, 1:], beta)
    model.train()
    return {"val_sse_per_frame": terms.sse_per_frame.item(), "val_kl_nats_per_frame": terms.kl_nats_per_frame.item()}


def end_chunk(run_dir: Path, config: VideoConfig, model: SVG, optimizer, state: dict, sums: torch.Tensor,
              val: torch.Tensor, progress: bool) -> None:
    n = sums[2].clamp(min=1)
    state["history"].append({"step": state["step"], "seconds": state["seconds"], "cpu_seconds": state["cpu_seconds"],
                             "train_sse_per_frame": (sums[0] / n).item(), "train_kl_nats_per_frame": (sums[1] / n).item(),
                             **validate(model, val, config.train.beta), "lr": optimizer.param_groups[0]["lr"],
                             "nonfinite_steps": state["nonfinite_steps"]})
    save_video_checkpoint(run_dir, config, model, state, optimizer)
    write_text(run_dir / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in state["history"]))
    if progress:
        h = state["history"][-1]
        tqdm.write(f"step {h['step']}: train SSE/frame {h['train_sse_per_frame']:.1f}, KL/frame "
                   f"{h['train_kl_nats_per_frame']:.2f} nats, val SSE/frame {h['val_sse_per_frame']:.1f} "
                   f"({h['seconds'] / 60:.1f} min)")


def save_video_checkpoint(run_dir: str | Path, config: VideoConfig, model: SVG, state: dict,
                          optimizer: torch.optim.Optimizer | None = None) -> None:
    from safetensors.torch import save_file

    with atomic_dir(Path(run_dir) / "checkpoint") as tmp:
        (tmp / "config.json").write_text(json.dumps({"format": FORMAT, "kind": KIND, **config.to_dict()}, indent=2))
        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, tmp / "model.safetensors")
        opt_json = None
        if optimizer is not None:
            tensors, opt_json = checkpoint._flatten_optimizer(optimizer.state_dict())
            save_file(tensors, tmp / "optimizer.safetensors")
        (tmp / "state.json").write_text(json.dumps({**state, "optimizer": opt_json}, indent=2))


def read_video_config(run_dir: str | Path) -> VideoConfig:
    raw, path = checkpoint.read_config_json(run_dir)
    if not isinstance(raw, dict) or raw.get("kind") != KIND:
        raise CheckpointError(f"{run_dir} holds an image model, not a video model (train one with vaekit video train)")
    if raw.pop("format", None) != FORMAT:
        raise CheckpointError(f"{path} is not a vaekit video config of format {FORMAT}")
    raw.pop("kind")
    if isinstance(raw.get("train"), dict):  # runs saved before the schedule existed trained at a constant rate
        raw["train"].setdefault("lr_schedule", "constant")
    try:
        return VideoConfig.from_dict(raw)
    except VaekitError as e:
        raise CheckpointError(f"{path} holds an invalid config: {e}") from None


def load_video(run_dir: str | Path) -> VideoRun:
    """Rebuild a trained video model from its run folder alone, in eval mode."""
    config = read_video_config(run_dir)
    ckpt = checkpoint.checkpoint_dir(run_dir)
    model = build_video_model(config)
    checkpoint.load_model_weights(model, checkpoint.load_weights(ckpt / "model.safetensors"), ckpt / "model.safetensors")
    model.eval()
    return VideoRun(Path(run_dir), config, model, checkpoint.read_state(ckpt)["history"])


def load_video_training_state(run_dir: str | Path, model: SVG, optimizer: torch.optim.Optimizer) -> dict:
    ckpt = checkpoint.checkpoint_dir(run_dir)
    checkpoint.load_model_weights(model, checkpoint.load_weights(ckpt / "model.safetensors"), ckpt / "model.safetensors")
    state = checkpoint.read_state(ckpt, VIDEO_STATE)
    if state.get("optimizer") is None:
        raise CheckpointError(f"{ckpt} holds no optimizer state, so it cannot be resumed")
    checkpoint.restore_optimizer(optimizer, ckpt / "optimizer.safetensors", state.pop("optimizer"))
    return state


def check_same_video_run(saved: VideoConfig, new: VideoConfig, run_dir: Path) -> None:
    """Resuming is only exact with the same settings; only the step budget and threads may change."""
    a, b = saved.to_dict(), new.to_dict()
    for section in a:
        for key in a[section]:
            if f"{section}.{key}" not in RESUMABLE and a[section][key] != b[section][key]:
                raise CheckpointError(
                    f"{run_dir} was trained with {section}.{key}={a[section][key]!r}, not {b[section][key]!r}; "
                    "resume with the same settings or choose another --out")
