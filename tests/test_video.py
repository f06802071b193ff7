"""Video: Moving MNIST, video files, the SVG-LP model, its training and run folders, and the
`vaekit video` commands, on tiny models (16x16 frames) that run in seconds."""
import json
import math
import shutil

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from conftest import SHARED_MNIST, error_of
from vaekit.cli.main import main
from vaekit.data import load_dataset
from vaekit.data.video import (TEST_SIZE, bounce, load_video_clips, moving_mnist, moving_mnist_test_set,
                               read_video)
from vaekit.engine.video import fit_video, load_video, read_video_config, save_video_checkpoint
from vaekit.errors import CheckpointError, ConfigError, DataError
from vaekit.losses import video_loss
from vaekit.models.svg import build_svg
from vaekit.video_config import VideoConfig

TINY_MODEL = {"widths": (4,), "fold": 2, "g_dim": 8, "z_dim": 2, "rnn_dim": 8, "n_past": 3}  # 16x16 frames
TINY_FLAGS = ["--frame-size", "16", "--seq-len", "6", "--widths", "4", "--g-dim", "8", "--z-dim", "2",
              "--rnn-dim", "8", "--n-past", "3", "--batch-size", "4", "--steps", "4", "--checkpoint-every", "2"]


def moving_square(frames: int, size: int = 16, start: int = 0) -> np.ndarray:
    """A bright 4x4 square moving one pixel per frame: uint8 (T, size, size)."""
    video = np.zeros((frames, size, size), np.uint8)
    for t in range(frames):
        x = (start + t) % (size - 4)
        video[t, 6:10, x:x + 4] = 255
    return video


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    for i in range(2):
        iio.imwrite(folder / f"v{i}.gif", moving_square(14, start=3 * i), extension=".gif", duration=100, loop=0)
    return folder


@pytest.fixture(scope="module")
def digits():
    return load_dataset("mnist", "test", data_dir=str(SHARED_MNIST), progress=False).images[:500]


def tiny_config(data, **train) -> VideoConfig:
    """A constant rate unless asked: the resume test cuts a run short by lowering its steps, which
    would move a cosine schedule's end."""
    return VideoConfig.from_dict({"data": {"data": str(data), "seq_len": 6, "frame_size": 16}, "model": TINY_MODEL,
                                  "train": {"steps": 4, "batch_size": 4, "checkpoint_every": 2,
                                            "lr_schedule": "constant", **train}})


@pytest.fixture(scope="module")
def video_run(videos, tmp_path_factory):
    return fit_video(tiny_config(videos), tmp_path_factory.mktemp("video") / "run", progress=False)


# data

def test_moving_mnist_shapes_range_and_two_digits(digits):
    x = moving_mnist(digits, 5, generator=torch.Generator().manual_seed(0))
    assert x.shape == (5, 20, 1, 64, 64) and x.dtype == torch.uint8
    assert x.max() == 255 and x.min() == 0
    ink = x.float().flatten(2).sum(-1)  # (5, 20)
    assert (ink > 0).all()  # never an empty frame
    assert ink.mean() > 1.2 * digits.float().flatten(1).sum(-1).mean()  # two digits, not one


def test_seeded_test_set_is_fixed(digits):
    a = moving_mnist_test_set(digits, n=20)
    assert torch.equal(a, moving_mnist_test_set(digits, n=20))
    assert TEST_SIZE == 1000 and a.shape == (20, 20, 1, 64, 64)
    assert not torch.equal(a, moving_mnist(digits, 20, generator=torch.Generator().manual_seed(1)))


def test_digits_stay_in_the_frame():
    block = torch.full((1, 1, 28, 28), 255, dtype=torch.uint8)  # a solid "digit": every pixel must show
    x = moving_mnist(block, 50, seq_len=40, num_digits=1, generator=torch.Generator().manual_seed(0))
    assert ((x == 255).flatten(2).sum(-1) == 28 * 28).all()
    path = bounce(torch.tensor([1.0, 35.0]), torch.tensor([3.6, 3.6]), torch.arange(100.0), 36.0)
    assert path.min() >= 0 and path.max() <= 36
    assert ((path[:, 1:] - path[:, :-1]).abs() <= 3.6 + 1e-4).all()  # never jumps


def test_read_video_file_and_frame_folder(videos, tmp_path):
    clip = read_video(videos / "v0.gif")
    assert clip.shape == (14, 1, 16, 16) and torch.equal(clip[:, 0], torch.from_numpy(moving_square(14)))
    for t, frame in enumerate(moving_square(3)):
        iio.imwrite(tmp_path / f"{t:03d}.png", frame)
    assert torch.equal(read_video(tmp_path)[:, 0], torch.from_numpy(moving_square(3)))
    clips = load_video_clips(videos, seq_len=6)
    assert clips.shape == (4, 6, 1, 16, 16)  # two clips of 6 from each 14-frame video
    with pytest.raises(DataError, match="no video file"):
        read_video(tmp_path / "missing.gif")


# model

def test_model_shapes_and_kl():
    model = build_svg((1, 16, 16), (4,), 8, 2, 8, 2, 1, 3, fold=2)
    x = torch.rand(2, 6, 1, 16, 16)
    out = model(x, generator=torch.Generator().manual_seed(0))
    assert out.x_hat.shape == (2, 5, 1, 16, 16) and out.kl.shape == (2, 5)
    assert (out.kl >= -1e-5).all() and 0 <= out.x_hat.min() and out.x_hat.max() <= 1
    model.eval()
    futures = model.predict(x[:, :3], 4, torch.Generator().manual_seed(0), samples=3)
    assert futures.shape == (2, 3, 4, 1, 16, 16)
    assert not torch.equal(futures[:, 0], futures[:, 1])  # the samples differ
    with pytest.raises(DataError, match="16x16"):
        build_svg((1, 32, 32), (4,), 8, 2, 8, 2, 1, 3, fold=2)
    with pytest.raises(DataError, match="frames of shape 1x16x16"):
        model(torch.rand(2, 6, 1, 8, 8))


def test_one_step_changes_every_weight():
    torch.manual_seed(0)
    model = build_svg((1, 16, 16), (4,), 8, 2, 8, 2, 1, 3, fold=2)
    before = {k: v.clone() for k, v in model.named_parameters()}
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    x = torch.rand(3, 5, 1, 16, 16)
    out = model(x, generator=torch.Generator().manual_seed(0))
    video_loss(out.x_hat, out.kl, x[:, 1:], beta=1.0).loss.backward()
    opt.step()
    unchanged = [k for k, v in model.named_parameters() if torch.equal(v, before[k])]
    assert not unchanged, unchanged


# training and run folders

def test_save_load_round_trip(video_run, tmp_path):
    run = load_video(video_run.path)
    assert run.config.model.frame_shape == (1, 16, 16) and len(run.history) == 2
    save_video_checkpoint(tmp_path / "copy", run.config, run.model, {"history": []})
    again = load_video(tmp_path / "copy")
    ctx = torch.rand(2, 3, 1, 16, 16)
    assert torch.equal(run.model.predict(ctx, 3, torch.Generator().manual_seed(1)),
                       again.model.predict(ctx, 3, torch.Generator().manual_seed(1)))


def test_resume_equals_uninterrupted(videos, video_run, tmp_path):
    fit_video(tiny_config(videos, steps=2), tmp_path / "r", progress=False)
    resumed = fit_video(tiny_config(videos, steps=4), tmp_path / "r", resume=True, progress=False)
    whole = video_run.model.state_dict()
    assert all(torch.equal(v, whole[k]) for k, v in resumed.model.state_dict().items())
    with pytest.raises(CheckpointError, match="beta"):
        fit_video(tiny_config(videos, steps=6, beta=2.0), tmp_path / "r", resume=True, progress=False)


def test_cosine_learning_rate_schedule_with_warmup(videos, tmp_path):
    run = fit_video(tiny_config(videos, lr=0.01, lr_schedule="cosine", warmup_steps=1), tmp_path / "c", progress=False)
    # the rate of the last update of each 2-step chunk: step 1 of 4 (after a 1-step warm-up), then step 3
    expected = [0.01 * 0.5 * (1 + math.cos(math.pi * p)) for p in (0 / 3, 2 / 3)]
    assert [h["lr"] for h in run.history] == pytest.approx(expected)


def test_runs_from_before_the_schedule_keep_a_constant_rate(video_run, tmp_path):
    copy = tmp_path / "old"
    shutil.copytree(video_run.path, copy)
    path = copy / "checkpoint" / "config.json"
    raw = json.loads(path.read_text())
    del raw["train"]["lr_schedule"]
    path.write_text(json.dumps(raw))
    assert VideoConfig().train.lr_schedule == "cosine"
    assert read_video_config(copy).train.lr_schedule == "constant"


def test_moving_mnist_training_step(tmp_path):
    config = VideoConfig.from_dict({"data": {"data_dir": str(SHARED_MNIST), "seq_len": 4},
                                    "model": {"widths": (4, 4, 4), "g_dim": 8, "z_dim": 2, "rnn_dim": 8, "n_past": 2},
                                    "train": {"steps": 1, "batch_size": 2}})
    run = fit_video(config, tmp_path / "mm", progress=False)
    assert run.config.model.frame_shape == (1, 64, 64) and run.history[0]["step"] == 1
    with pytest.raises(ConfigError, match="unknown video config key"):
        VideoConfig.from_dict({"train": {"epochs": 3}})


# CLI

def gif_frames(path) -> int:
    return len(iio.imread(path, index=None))


def test_cli_train_generate_predict(videos, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["video", "train", "--data", str(videos), *TINY_FLAGS, "--out", str(run)]) == 0
    assert (run / "checkpoint/model.safetensors").is_file() and (run / "metrics.jsonl").is_file()
    assert main(["video", "generate", str(run), "-n", "3", "--frames", "7", "-o", str(tmp_path / "g.gif")]) == 0
    assert gif_frames(tmp_path / "g.gif") == 7
    assert main(["video", "predict", str(run), str(videos / "v1.gif"), "--context", "4", "--frames", "5",
                 "-o", str(tmp_path / "p.gif")]) == 0
    movie = iio.imread(tmp_path / "p.gif", index=None)
    assert len(movie) == 9 and movie.shape[2] > 4 * 16  # the real clip and three samples side by side
    assert main(["video", "train", "--data", str(videos), *TINY_FLAGS, "--steps", "6", "--out", str(run),
                 "--resume"]) == 0
    assert main(["video", "train", "--steps", "7", "--out", str(run), "--resume"]) == 0  # its own settings


def test_cli_errors(video_run, videos, tmp_path, capsys, monkeypatch):
    run = str(video_run.path)
    out = str(tmp_path / "o.gif")
    assert "no video file or frame folder" in error_of(capsys, ["video", "predict", run, str(tmp_path / "x.gif"), "-o", out])
    big = tmp_path / "big.gif"
    iio.imwrite(big, np.zeros((12, 32, 32), np.uint8), extension=".gif")
    assert "32x32 pixels; this model takes 16x16" in error_of(capsys, ["video", "predict", run, str(big), "-o", out])
    assert "fewer than the 20 context frames" in error_of(
        capsys, ["video", "predict", run, str(videos / "v0.gif"), "--context", "20", "-o", out])
    assert "must end in .gif or .mp4" in error_of(capsys, ["video", "generate", run, "-o", str(tmp_path / "o.avi")])
    monkeypatch.setattr("vaekit.tasks.video.has_ffmpeg", lambda: False)
    assert "ffmpeg plugin" in error_of(capsys, ["video", "generate", run, "-o", str(tmp_path / "o.mp4")])
    image_run = tmp_path / "image-run/checkpoint"
    image_run.mkdir(parents=True)
    (image_run / "config.json").write_text('{"format": 1, "data": {}}')
    (image_run / "model.safetensors").write_bytes(b"")
    assert "not a video model" in error_of(capsys, ["video", "generate", str(image_run.parent), "-o", out])
    assert "holds a video model" in error_of(capsys, ["sample", run, "-o", str(tmp_path / "s.png")])
    assert not (tmp_path / "o.gif").exists()


def test_mp4_output(video_run, tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    assert main(["video", "generate", str(video_run.path), "-n", "2", "--frames", "6", "-o", str(tmp_path / "g.mp4")]) == 0
    assert len(read_video(tmp_path / "g.mp4")) == 6
