"""bf16 autocast for the training step. The products then run in bfloat16: faster steps for the
MLP and conv VAEs on a CPU with bf16 units, several times slower ones on a CPU without
(docs/benchmarks.md); so it is off by default, and a run that asks for it on such a CPU is told so."""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import torch

from vaekit.config import Config
from vaekit.errors import ConfigError
from vaekit.registry import CODEC_ARCHITECTURES

# /proc/cpuinfo flags of CPUs that multiply bf16 natively: x86 AVX512-BF16 and AMX, Arm's BF16 extension
BF16_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context a training step's forward pass and loss run in; the backward pass and the
    optimizer step stay outside it, as autocast expects (gradients come back in the weights' fp32)."""
    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def check_supported(config: Config) -> None:
    """Refuse bf16 for models whose loss would lose precision under it (casts not written for them)."""
    if config.train.precision == "bf16" and config.model.arch in CODEC_ARCHITECTURES:
        raise ConfigError(f"--model {config.model.arch} trains in fp32: its rate estimate (the entropy model's "
                          "bin probabilities) is not kept in full precision under bf16 (set precision=fp32)")


def read_cpuinfo() -> str | None:
    """/proc/cpuinfo's text; None where there is none (not Linux)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return None


def cpu_has_bf16(cpuinfo: str | None = None) -> bool | None:
    """Whether this CPU has bf16 units, from its /proc/cpuinfo flags; None where unknown."""
    cpuinfo = read_cpuinfo() if cpuinfo is None else cpuinfo
    flags = set()
    for line in (cpuinfo or "").splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[1].split())
    return bool(flags & BF16_FLAGS) if flags else None


def warn_if_emulated(precision: str, device: torch.device) -> None:
    """A run asked for bf16 where it is slower, not faster: say so once, and go on (it is correct)."""
    if precision == "bf16" and device.type == "cpu" and cpu_has_bf16() is False:
        print("vaekit train: warning: --precision bf16 on a CPU without bf16 units (no avx512_bf16, amx_bf16 "
              "or bf16 flag): its products are emulated and the steps will be several times slower than fp32",
              file=sys.stderr)
