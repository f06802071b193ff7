"""Shared fixtures: tiny datasets and configs so every test runs in seconds on CPU."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vaekit.config import Config

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """One thread for every test, set before any fixture: a module-scoped fixture that trains a
    model would otherwise run with torch's default threads when its module comes first, and give
    slightly different weights than the same training inside the test."""
    torch.set_num_threads(1)


def tiny_config(**overrides) -> Config:
    base = {"data": {"data": "digits", "val_fraction": 0.1, "limit": 256},
            "model": {"arch": "mlp", "latent_dim": 4, "hidden_dims": (32,)},
            "train": {"epochs": 2, "batch_size": 64, "lr": 3e-3, "seed": 0}}
    return Config.from_dict(base).replace(overrides)


@pytest.fixture
def tiny():
    return tiny_config


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """One tiny trained run (with its report) shared by the read-only tests."""
    import vaekit

    out = tmp_path_factory.mktemp("runs") / "tiny"
    return vaekit.train(tiny_config(ema_decay=0.9), out, progress=False)


def error_of(capsys, argv) -> str:
    """Run the CLI and check it failed the way users should see: exit 2, one line, no traceback."""
    from vaekit.cli.main import main

    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def usage_error_of(capsys, argv) -> str:
    """Run the CLI on flags argparse refuses: exit 2 before any work, no traceback; the error line."""
    from vaekit.cli.main import main

    with pytest.raises(SystemExit) as exit:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert exit.value.code == 2 and "Traceback" not in err, err
    return err.splitlines()[-1]
