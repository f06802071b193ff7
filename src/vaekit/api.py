"""The Python entry points: `vaekit.train(config, out)` and `vaekit.load(run_dir)`."""
from __future__ import annotations

from pathlib import Path

from vaekit.config import Config
from vaekit.engine import distributed
from vaekit.engine.checkpoint import Run, load
from vaekit.engine.trainer import fit, prepare_data
from vaekit.report import write_report


def train(config: Config | dict | None = None, out: str | Path = "runs/vaekit", *, resume: bool = False,
          report: bool = True, progress: bool = True) -> Run:
    """Train, checkpoint every epoch, and (by default) write the run's pictures and index.html."""
    config = config if isinstance(config, Config) else Config.from_dict(config or {})
    data = prepare_data(config, progress=progress)
    run = fit(config, out, resume=resume, progress=progress, data=data)
    if report and distributed.is_main_process():  # under torchrun, one process writes the report
        # val_fraction 0 kept no images back: the report scores some training images, and says so
        images, split = (data.val, "held-out") if len(data.val) else (data.train[-1000:], "training (val_fraction 0)")
        write_report(run, images, progress=progress, split=split)
    return run


__all__ = ["train", "load", "Run", "Config"]
