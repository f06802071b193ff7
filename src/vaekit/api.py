"""The Python entry points: `vaekit.train(config, out)` and `vaekit.load(run_dir)`."""
from __future__ import annotations

import os
from pathlib import Path

from vaekit.config import Config
from vaekit.engine.checkpoint import Run, load
from vaekit.engine.trainer import fit, prepare_data
from vaekit.report import write_report


def train(config: Config | dict | None = None, out: str | Path = "runs/vaekit", *, resume: bool = False,
          report: bool = True, progress: bool = True) -> Run:
    """Train, checkpoint every epoch, and (by default) write the run's pictures and index.html."""
    config = config if isinstance(config, Config) else Config.from_dict(config or {})
    data = prepare_data(config, progress=progress)
    run = fit(config, out, resume=resume, progress=progress, data=data)
    if report and os.environ.get("RANK", "0") == "0":  # under torchrun, one process writes the report
        if len(data.val):
            write_report(run, data.val, progress=progress)
        else:  # val_fraction 0 kept no images back: score some training images, and say so
            write_report(run, data.train[-1000:], progress=progress, split="training (val_fraction 0)")
    return run


__all__ = ["train", "load", "Run", "Config"]
