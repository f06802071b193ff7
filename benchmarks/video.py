"""Video prediction on Moving MNIST: SVG-LP (vaekit video) against copy-last-frame, in one script.

    python benchmarks/video.py [--run DIR] [--minutes 120] [--samples 10] [--limit 1000] [--data-dir DIR] [--out JSON]

Protocol: the fixed test set of vaekit.data.video (1,000 sequences of two MNIST test digits, seed
fixed); the model sees frames 1-10 and predicts frames 11-20. Per frame, MSE is the squared error
summed over the 64x64 pixels in [0, 1] (as the literature reports it), SSIM is scikit-image's
(7x7 window, data range 1); both averaged over the 10 predicted frames and the 1,000 sequences.
"best of N": for each sequence the sample with the lowest MSE (highest SSIM) of N, as SVG reports;
"mean": the average over the N samples. Copy-last-frame repeats frame 10. The model is trained here
with configs/moving_mnist_svg.yaml into --run (time-limited), or loaded from there when it
already holds a run. Writes --out (benchmarks/results/video.json) and, beside it,
video_predictions.gif and video_predictions.png.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from skimage.metrics import structural_similarity

from common import REPO, default_mnist_dir, machine, write_result

from vaekit.config import load_yaml
from vaekit.data import load_dataset
from vaekit.data.video import moving_mnist_test_set
from vaekit.engine.video import fit_video, load_video
from vaekit.imaging import save_grid
from vaekit.tasks.video import side_by_side, write_video
from vaekit.video_config import VideoConfig

CONTEXT, FUTURE = 10, 10
PRESET = REPO / "configs" / "moving_mnist_svg.yaml"  # the model and training recipe


def get_run(run_dir: Path, minutes: float, data_dir: str | None):
    if (run_dir / "checkpoint" / "model.safetensors").is_file():
        return load_video(run_dir)
    config = VideoConfig.from_dict(load_yaml(PRESET)).replace({"max_minutes": minutes, "data_dir": data_dir})
    if (config.data.seq_len, config.model.n_past) != (CONTEXT + FUTURE, CONTEXT):
        raise SystemExit(f"{PRESET} must train on {CONTEXT + FUTURE} frames with {CONTEXT} in context")
    return fit_video(config, run_dir)


def sse_per_frame(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """(..., T, C, H, W) -> (..., T): squared error summed over pixels."""
    return (pred - truth).pow(2).flatten(-3).sum(-1)


def ssim_per_frame(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """(..., T, 1, H, W) -> (..., T), scikit-image's SSIM per grey frame."""
    p, t = pred.flatten(0, -4).numpy(), truth.expand_as(pred).flatten(0, -4).numpy()
    scores = [structural_similarity(a[0], b[0], data_range=1.0) for a, b in zip(p, t)]
    return torch.tensor(scores).view(pred.shape[:-3])


@torch.no_grad()
def evaluate(model, test: torch.Tensor, samples: int, batch: int = 50) -> dict:
    """Per-sequence, per-sample, per-frame MSE and SSIM of the model's futures, and of copy-last."""
    g = torch.Generator().manual_seed(0)
    mse, ssim, futures = [], [], []
    for start in range(0, len(test), batch):
        x = test[start:start + batch].float().div(255)  # (B, 20, 1, 64, 64)
        truth = x[:, None, CONTEXT:]  # (B, 1, 10, ...)
        pred = model.predict(x[:, :CONTEXT], FUTURE, g, samples=samples)  # (B, S, 10, ...)
        mse.append(sse_per_frame(pred, truth))
        ssim.append(ssim_per_frame(pred, truth))
        if start == 0:
            futures = pred[:4]
    x = test.float().div(255)
    copy = x[:, CONTEXT - 1:CONTEXT].expand(-1, FUTURE, -1, -1, -1)
    return {"mse": torch.cat(mse), "ssim": torch.cat(ssim), "copy_mse": sse_per_frame(copy, x[:, CONTEXT:]),
            "copy_ssim": ssim_per_frame(copy, x[:, CONTEXT:]), "futures": futures}


def summarize(r: dict) -> dict:
    mse_seq, ssim_seq = r["mse"].mean(-1), r["ssim"].mean(-1)  # (N, S): averaged over the predicted frames
    best_mse = mse_seq.argmin(1)
    return {
        "mse_best": mse_seq.min(1).values.mean().item(), "mse_mean": mse_seq.mean().item(),
        "ssim_best": ssim_seq.max(1).values.mean().item(), "ssim_mean": ssim_seq.mean().item(),
        "copy_last_mse": r["copy_mse"].mean().item(), "copy_last_ssim": r["copy_ssim"].mean().item(),
        "mse_best_per_frame": r["mse"][torch.arange(len(best_mse)), best_mse].mean(0).tolist(),
        "mse_mean_per_frame": r["mse"].mean((0, 1)).tolist(),
        "copy_last_mse_per_frame": r["copy_mse"].mean(0).tolist(),
    }


def pictures(test: torch.Tensor, futures: torch.Tensor, out_dir: Path) -> None:
    """GIF: per row, the truth, three sampled futures and copy-last; PNG: truth over sample 1."""
    x = test[:4].float().div(255)
    ctx = x[:, None, :CONTEXT].expand(-1, 3, -1, -1, -1, -1)
    samples = torch.cat([ctx, futures[:, :3]], 2)  # (4, 3, 20, ...)
    copy = torch.cat([x[:, :CONTEXT], x[:, CONTEXT - 1:CONTEXT].expand(-1, FUTURE, -1, -1, -1)], 1)
    rows = torch.cat([x[:, None], samples, copy[:, None]], 1)  # (4, 5, 20, ...)
    write_video(out_dir / "video_predictions.gif", side_by_side(rows.flatten(0, 1), CONTEXT, nrow=5), fps=4)
    strip = torch.stack([x[:2], samples[:2, 0]], 1).flatten(0, 1)  # truth, sample; 2 sequences
    save_grid(out_dir / "video_predictions.png", strip.flatten(0, 1), nrow=CONTEXT + FUTURE)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default=str(REPO / "runs" / "bench-video"), help="run folder (trained here if empty)")
    ap.add_argument("--minutes", type=float, default=120.0, help="training time limit (stops at a checkpoint)")
    ap.add_argument("--samples", type=int, default=10, help="sampled futures per test sequence (N)")
    ap.add_argument("--limit", type=int, default=1000, help="test sequences scored (default: all 1,000)")
    ap.add_argument("--data-dir", default=default_mnist_dir())
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "video.json"), help="result JSON")
    ap.add_argument("--note", help="a remark kept in the JSON (for example, how loaded the machine was)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    run = get_run(Path(args.run), args.minutes, args.data_dir)
    digits = load_dataset("mnist", "test", data_dir=args.data_dir, progress=False).images
    test = moving_mnist_test_set(digits)[: args.limit]
    started = time.perf_counter()
    raw = evaluate(run.model, test, args.samples)
    result = {"protocol": f"Moving MNIST, fixed test set ({len(test)} sequences), {CONTEXT} frames in, {FUTURE} out; "
                          "MSE = squared error summed over 64x64 pixels in [0,1], per frame",
              "samples": args.samples, **summarize(raw),
              "training_steps": run.history[-1]["step"], "training_minutes": run.history[-1]["seconds"] / 60,
              "training_cpu_minutes": run.history[-1]["cpu_seconds"] / 60 if "cpu_seconds" in run.history[-1] else None,
              "training_sequences": run.history[-1]["step"] * run.config.train.batch_size,
              "evaluation_minutes": (time.perf_counter() - started) / 60,
              "config": run.config.to_dict(), "parameters": sum(p.numel() for p in run.model.parameters()),
              "history": run.history, "machine": machine(), "note": args.note}
    out = Path(args.out)
    write_result(out, result)
    pictures(test, raw["futures"], out.parent)
    print(f"| SVG-LP (vaekit), best of {args.samples} | {result['mse_best']:.1f} | {result['ssim_best']:.3f} |")
    print(f"| SVG-LP (vaekit), mean of {args.samples} | {result['mse_mean']:.1f} | {result['ssim_mean']:.3f} |")
    print(f"| copy last frame | {result['copy_last_mse']:.1f} | {result['copy_last_ssim']:.3f} |")
    print(f"training: {result['training_steps']} steps, {result['training_minutes']:.1f} min")


if __name__ == "__main__":
    main()
