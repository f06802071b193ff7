"""A sequential VAE with a learned prior: SVG-LP (Denton & Fergus, "Stochastic Video Generation
with a Learned Prior", ICML 2018), composed from small parts.

    x_{t-1} -FrameEncoder-> h_{t-1} --+                         skips of the last context frame
    x_t     -FrameEncoder-> h_t -posterior LSTM-> q(z_t | x_1..t) -> z_t   |
    h_{t-1} -prior LSTM-> p(z_t | x_1..t-1)                        |         v
    [h_{t-1}, z_t] -predictor LSTM-> g_t ------------------------------> FrameDecoder -> x_hat_t

Training is teacher-forced: every frame is encoded in one batched pass, only the three LSTMs step
through time, and every predicted frame is decoded in one batched pass; `forward` returns the
predictions and the per-frame KL(q || p), and the loss (`vaekit.losses.video_loss`) lives outside.
At test time (`predict`) the posterior reads the context frames, then z_t comes from the learned
prior and each predicted frame is encoded again to predict the next.

Shapes: clips are (B, T, C, H, W) in [0, 1]; H = W = fold * 4 * 2^len(widths) (64 for fold 2, three widths).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vaekit.errors import DataError
from vaekit.models.distributions import DiagonalGaussian

State = list[tuple[torch.Tensor, torch.Tensor]] | None  # (h, c) of each LSTM layer


def down(c_in: int, c_out: int) -> nn.Sequential:
    """DCGAN's downsampling cell: 4x4 stride-2 convolution, batch norm, leaky ReLU. (N, C, H, W) -> (N, C', H/2, W/2)"""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))


def up(c_in: int, c_out: int) -> nn.Sequential:
    """DCGAN's upsampling cell: 4x4 stride-2 transposed convolution, batch norm, leaky ReLU."""
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out),
                         nn.LeakyReLU(0.2))


class FrameEncoder(nn.Module):
    """x (N, C, S, S) -> h (N, g_dim) in [-1, 1], and the feature map of each resolution (the skips)."""

    def __init__(self, channels: int, widths: tuple[int, ...], g_dim: int, frame_size: int, fold: int = 1):
        super().__init__()
        self.fold = fold
        ins = (channels * fold * fold, *widths[:-1])
        self.blocks = nn.ModuleList(down(a, b) for a, b in zip(ins, widths))
        side = frame_size // fold >> len(widths)  # 4 for a 64x64 frame, fold 2 and three widths
        self.out = nn.Sequential(nn.Conv2d(widths[-1], g_dim, side), nn.BatchNorm2d(g_dim), nn.Tanh())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = F.pixel_unshuffle(x, self.fold)  # (N, C*f*f, S/f, S/f): fold x fold blocks into channels
        skips = []
        for block in self.blocks:
            x = block(x)  # (N, w_i, S / 2^(i+1), S / 2^(i+1))
            skips.append(x)
        return self.out(x).flatten(1), skips


class FrameDecoder(nn.Module):
    """g (N, g_dim) and the encoder's skips -> frame (N, C, S, S) in [0, 1]. At every resolution the
    decoder sees the matching encoder features of a context frame: the static content (and the
    digits' looks) comes from there, so z and g only have to carry what changes."""

    def __init__(self, channels: int, widths: tuple[int, ...], g_dim: int, frame_size: int, fold: int = 1):
        super().__init__()
        self.fold = fold
        side = frame_size // fold >> len(widths)
        self.inp = nn.Sequential(nn.ConvTranspose2d(g_dim, widths[-1], side), nn.BatchNorm2d(widths[-1]),
                                 nn.LeakyReLU(0.2))
        outs = widths[-2::-1]  # from the coarsest, e.g. (32, 16) for widths (16, 32, 64)
        self.blocks = nn.ModuleList(up(2 * a, b) for a, b in zip(widths[::-1], outs))
        self.out = nn.ConvTranspose2d(2 * widths[0], channels * fold * fold, 4, 2, 1)

    def forward(self, g: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        x = self.inp(g[:, :, None, None])  # (N, w_last, side, side)
        for block, skip in zip(self.blocks, skips[:0:-1]):
            x = block(torch.cat([x, skip], 1))  # doubles the side
        logits = self.out(torch.cat([x, skips[0]], 1))  # (N, C*f*f, S/f, S/f)
        return torch.sigmoid(F.pixel_shuffle(logits, self.fold))

    @property
    def output_bias(self) -> torch.Tensor:
        return self.out.bias


class LSTMStack(nn.Module):
    """Linear embedding, `layers` LSTM cells, linear read-out (tanh-squashed with `squash`, to match
    the encoder's h): one time step per call, the state passed in and out explicitly."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int, layers: int, squash: bool = False):
        super().__init__()
        self.embed = nn.Linear(in_dim, hidden)
        self.cells = nn.ModuleList(nn.LSTMCell(hidden, hidden) for _ in range(layers))
        self.read = nn.Sequential(nn.Linear(hidden, out_dim), nn.Tanh()) if squash else nn.Linear(hidden, out_dim)

    def forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        h = self.embed(x)
        new_state = []
        for i, cell in enumerate(self.cells):
            hc = cell(h, None if state is None else state[i])
            new_state.append(hc)
            h = hc[0]
        return self.read(h), new_state


class GaussianLSTM(nn.Module):
    """An LSTM whose read-out is a diagonal Gaussian over z: the posterior q(z_t | x_1..t) when fed
    h_t, the learned prior p(z_t | x_1..t-1) when fed h_{t-1}."""

    def __init__(self, in_dim: int, z_dim: int, hidden: int, layers: int):
        super().__init__()
        self.lstm = LSTMStack(in_dim, 2 * z_dim, hidden, layers)

    def forward(self, h: torch.Tensor, state: State) -> tuple[DiagonalGaussian, State]:
        params, state = self.lstm(h, state)
        mean, log_var = params.chunk(2, -1)
        return DiagonalGaussian(mean, log_var), state


def gaussian_kl(q: DiagonalGaussian, p: DiagonalGaussian) -> torch.Tensor:
    """KL(q || p) between diagonal Gaussians, summed over dims, nats: (B, D) -> (B,)."""
    return 0.5 * (p.log_var - q.log_var + (q.log_var.exp() + (q.mean - p.mean) ** 2) / p.log_var.exp()
                  - 1).sum(-1)


@dataclass
class SVGOutput:
    """A teacher-forced pass over clips of T frames; frame 0 is never predicted."""

    x_hat: torch.Tensor  # predicted frames 1..T-1, (B, T-1, C, H, W) in [0, 1]
    kl: torch.Tensor  # KL(q(z_t | x_1..t) || p(z_t | x_1..t-1)) per frame, nats, (B, T-1)


class SVG(nn.Module):
    """SVG-LP: frame encoder/decoder with skips, posterior, learned prior and frame predictor."""

    def __init__(self, encoder: FrameEncoder, decoder: FrameDecoder, posterior: GaussianLSTM, prior: GaussianLSTM,
                 predictor: LSTMStack, frame_shape: tuple[int, int, int], n_past: int):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.posterior, self.prior, self.predictor = posterior, prior, predictor
        self.frame_shape = tuple(frame_shape)
        self.n_past = n_past  # context frames during training; the skip comes from the last of them

    def check_clips(self, x: torch.Tensor, min_frames: int = 1) -> None:
        if x.dim() != 5 or tuple(x.shape[2:]) != self.frame_shape:
            got = "x".join(map(str, x.shape[2:])) if x.dim() == 5 else f"a {x.dim()}-D tensor"
            raise DataError(f"this model takes frames of shape {'x'.join(map(str, self.frame_shape))} "
                            f"(channels x height x width), got {got}")
        if x.shape[1] < min_frames:
            raise DataError(f"need at least {min_frames} frames, got {x.shape[1]}")

    def encode_frames(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """All frames in one pass: (B, T, C, H, W) -> h (B, T, g), skips [(B, T, w_i, ., .)]."""
        b, t = x.shape[:2]
        h, skips = self.encoder(x.flatten(0, 1))
        return h.unflatten(0, (b, t)), [s.unflatten(0, (b, t)) for s in skips]

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> SVGOutput:
        """Teacher-forced: predict frames 1..T-1 of x (B, T, C, H, W), z_t from the posterior."""
        self.check_clips(x, min_frames=2)
        b, t = x.shape[:2]
        h, skips = self.encode_frames(x)  # (B, T, g)
        post = prior = pred = None
        gs, kls = [], []
        for i in range(1, t):
            q, post = self.posterior(h[:, i], post)
            p, prior = self.prior(h[:, i - 1], prior)
            g, pred = self.predictor(torch.cat([h[:, i - 1], q.sample(generator)], -1), pred)
            gs.append(g)
            kls.append(gaussian_kl(q, p))
        # the skip of frame i comes from frame i-1 in the context, then stays at the last context frame
        source = torch.arange(t - 1).clamp(max=self.n_past - 1)
        frame_skips = [s[:, source].flatten(0, 1) for s in skips]
        x_hat = self.decoder(torch.stack(gs, 1).flatten(0, 1), frame_skips)
        return SVGOutput(x_hat.unflatten(0, (b, t - 1)), torch.stack(kls, 1))

    @torch.no_grad()
    def predict(self, context: torch.Tensor, n_future: int, generator: torch.Generator | None = None,
                samples: int = 1) -> torch.Tensor:
        """`samples` sampled futures of each clip: context (B, K, C, H, W) -> (B, samples, n_future, C, H, W).
        The posterior reads the K context frames; then z_t ~ p(z_t | x_1..t-1) and each prediction
        is fed back in."""
        self.check_clips(context, min_frames=1)
        b, k = context.shape[:2]
        context = context.repeat_interleave(samples, 0)  # (B*S, K, ...)
        h, skips = self.encode_frames(context)
        skip = [s[:, -1] for s in skips]  # the last context frame's features
        post = prior = pred = None
        for i in range(1, k):  # warm the LSTMs up on the context
            q, post = self.posterior(h[:, i], post)
            _, prior = self.prior(h[:, i - 1], prior)
            _, pred = self.predictor(torch.cat([h[:, i - 1], q.sample(generator)], -1), pred)
        h_prev, frames = h[:, -1], []
        for _ in range(n_future):
            p, prior = self.prior(h_prev, prior)
            g, pred = self.predictor(torch.cat([h_prev, p.sample(generator)], -1), pred)
            frame = self.decoder(g, skip)
            h_prev, _ = self.encoder(frame)
            frames.append(frame)
        return torch.stack(frames, 1).unflatten(0, (b, samples))


def build_svg(frame_shape: tuple[int, int, int], widths: tuple[int, ...], g_dim: int, z_dim: int, rnn_dim: int,
              predictor_layers: int, latent_layers: int, n_past: int, fold: int = 1) -> SVG:
    """SVG-LP for frames of `frame_shape` (C, S, S), S = fold * 4 * 2^len(widths). `fold` > 1 moves
    fold x fold pixel blocks into channels before the first convolution (and back after the last),
    which takes the costly full-resolution layers out: fold 2 makes a 64x64 model about 3x cheaper."""
    c, height, width = frame_shape
    side = fold * 4 << len(widths)
    if height != width or height != side:
        raise DataError(f"this SVG model ({len(widths)} widths, fold {fold}) takes {side}x{side} frames, "
                        f"not {height}x{width}")
    return SVG(FrameEncoder(c, widths, g_dim, height, fold), FrameDecoder(c, widths, g_dim, height, fold),
               GaussianLSTM(g_dim, z_dim, rnn_dim, latent_layers), GaussianLSTM(g_dim, z_dim, rnn_dim, latent_layers),
               LSTMStack(g_dim + z_dim, g_dim, rnn_dim, predictor_layers, squash=True), frame_shape, n_past)
