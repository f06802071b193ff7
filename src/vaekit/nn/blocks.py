"""Reusable convolutional cells."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


# the cells' nonlinearity: GELU as VDVAE; ReLU and SiLU cost less on a CPU (erf is slow there)
ACTIVATIONS = {"gelu": F.gelu, "silu": F.silu, "relu": F.relu}


class Bottleneck(nn.Module):
    """VDVAE's cell (Child 2021): activation (GELU by default) then 1x1 -> 3x3 -> 3x3 -> 1x1
    convolutions, narrow in the middle. With `residual`, returns x + f(x); `last_scale` shrinks the
    last layer's initial weights (1/sqrt(depth)) so a deep stack starts close to the identity;
    `zero_last` starts f at 0."""

    def __init__(self, c_in: int, c_mid: int, c_out: int, residual: bool = True, last_scale: float = 1.0,
                 zero_last: bool = False, activation: str = "gelu"):
        super().__init__()
        self.residual = residual
        self.activation = ACTIVATIONS[activation]
        self.convs = nn.ModuleList([nn.Conv2d(c_in, c_mid, 1), nn.Conv2d(c_mid, c_mid, 3, padding=1),
                                    nn.Conv2d(c_mid, c_mid, 3, padding=1), nn.Conv2d(c_mid, c_out, 1)])
        with torch.no_grad():
            last = self.convs[-1]
            if zero_last:
                last.weight.zero_()
                last.bias.zero_()
            else:
                last.weight.mul_(last_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for conv in self.convs:
            h = conv(self.activation(h))
        return x + h if self.residual else h
