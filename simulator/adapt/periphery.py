"""A differentiable twin of the tile periphery, in torch, for training with the analog model in the loop.

Same order and units as `simulator.analog.periphery` (docs/analog_model.md): noise
management (divide each tile input slice by its abs-max), DAC (round to nearest, ties to even,
clip to +-inp_bound), one MVM per row block, output noise, ADC (round, clip to
+-out_bound), optional iterative bound management, then the digital epilogue (input
scale x max|W| x drift gain, sum of row blocks, bias). The quantisers pass gradients
straight through (identity inside the clip range, zero outside); the noise-management
scale is treated as a constant, which under straight-through rounding gives exactly the
gradient of x @ W.

Weights come from one of two places:
* `TileState` (chip-specific training, and the equality test): the normalised weights
  and output scales of programmed realisations at a drift time, read from an
  `AnalogLinear`; frozen.
* `NoiseInjection` (chip-agnostic training, AHWA): the layer's own FP weight, normalised
  per tile or per column as programming would, with fresh weight noise every forward.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from simulator.analog.device import PCM_REFERENCE_G_MAX_US, check_choice, pcm_programming_sigma_uS
from simulator.analog.periphery import PeripherySettings, periphery_settings
from simulator.hw.schema import AnalogConfig

WEIGHT_NOISE_KINDS = ("additive", "pcm", "none")


@dataclass(frozen=True)
class NoiseInjection:
    """Noise drawn at every training forward.

    weight_noise: `additive` N(0, weight_sigma) in normalised units (a fraction of the
    tile's / column's max|W|; 0.067 in Li et al.), `pcm` the PCM programming-noise
    statistics on both devices of each pair, times `pcm_scale`, or `none`.
    out_noise: N(0, out_noise) per tile output per MVM; None takes the config's
    `periphery.out_noise`.
    """

    weight_noise: str = "additive"
    weight_sigma: float = 0.067
    pcm_scale: float = 1.0
    out_noise: float | None = None

    def __post_init__(self):
        check_choice(self.weight_noise, WEIGHT_NOISE_KINDS, "weight noise")


@dataclass(frozen=True)
class TileState:
    """Programmed realisations of one layer at a drift time, as the periphery sees them.

    weights: [R, row_blocks, rows, out] normalised (G+ - G-)/g_max; out_scale: [R, row_blocks, out].
    """

    weights: torch.Tensor
    out_scale: torch.Tensor

    @property
    def realisations(self) -> int:
        return self.weights.shape[0]


def ste_round_clip(value: torch.Tensor, step: float, levels: int,
                   in_steps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(quantised value, clipped mask): round(value / step) (ties to even, as the numba
    kernels' np.rint on float32) clipped to +-levels,
    times step. Forward exact; backward identity inside +-levels*step, 0 outside.
    `in_steps` (value / step computed another way) decides the level when given."""
    level = torch.round(value / step if in_steps is None else in_steps)
    kept = level.clamp(-levels, levels)
    bound = levels * step
    inside = value.clamp(-bound, bound)
    return inside + (kept * step - inside).detach(), level != kept


def normalised_weights(weight: torch.Tensor, rows: int, cols: int, weight_scaling: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(W as [row_blocks, rows, out] / max|W|, max|W| as [row_blocks, out]).

    max|W| per tile (rows x cols block) or per column of each row block, as
    `simulator.analog.device.weight_max_abs`; all-zero blocks get 1. max|W| is a constant
    for autograd (programming fixes it), so d(normalised * max)/dW = 1.
    """
    out_features, in_features = weight.shape
    row_blocks = -(-in_features // rows)
    blocks = F.pad(weight.t(), (0, 0, 0, row_blocks * rows - in_features)).view(row_blocks, rows, out_features)
    with torch.no_grad():
        column_max = blocks.abs().amax(dim=1)
        if weight_scaling == "per_tile":
            col_blocks = -(-out_features // cols)
            padded = F.pad(column_max, (0, col_blocks * cols - out_features))
            tile_max = padded.view(row_blocks, col_blocks, cols).amax(dim=2)
            column_max = tile_max.repeat_interleave(cols, dim=1)[:, :out_features]
        weight_max = torch.where(column_max > 0, column_max, torch.ones_like(column_max))
    return blocks / weight_max[:, None, :], weight_max


def pcm_sigma_normalised(weights: torch.Tensor, g_max_uS: float, scale: float) -> torch.Tensor:
    """Std of (G+ - G-)/g_max from PCM programming noise on both devices of each pair:
    one device targets |w| g_max, the other 0 (docs/analog_model.md)."""
    with torch.no_grad():
        magnitude = weights.abs().clamp(max=1.0)
        sigma_on = pcm_programming_sigma_uS(magnitude, g_max_uS) / g_max_uS
        sigma_off = pcm_programming_sigma_uS(torch.zeros(()), g_max_uS) / g_max_uS
        return scale * torch.sqrt(sigma_on ** 2 + sigma_off ** 2)


class TwinLinear(nn.Module):
    """y = x W^T + b through the differentiable tile periphery of `analog`.

    `weight` / `bias` are the FP module's own Parameters (shared, so tied weights stay
    tied and AHWA updates them in place). `tiles` set: run on those programmed
    realisations (leading dim of x = R * b); else one realisation with `noise` injected in
    training mode. `eval()` with `noise_in_eval=False` (default) switches all noise off.
    """

    def __init__(self, linear: nn.Linear, analog: AnalogConfig, noise: NoiseInjection | None = None,
                 tiles: TileState | None = None, name: str = "", seed: int = 0):
        super().__init__()
        self.name = name
        self.weight = linear.weight
        self.bias = linear.bias
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.settings: PeripherySettings = periphery_settings(analog)
        self.weight_scaling = check_choice(analog.periphery.weight_scaling, ("per_tile", "per_column"),
                                           "analog.periphery.weight_scaling")
        self.g_max_uS = analog.device.g_max_uS if analog.device.model == "pcm" else PCM_REFERENCE_G_MAX_US
        self.noise = noise or NoiseInjection(weight_noise="none", out_noise=0.0)
        self.tiles = tiles
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def out_noise(self) -> float:
        return self.settings.out_noise if self.noise.out_noise is None else self.noise.out_noise

    def reseed(self, seed: int) -> None:
        """Restart this layer's noise stream (the training loop reseeds every step)."""
        self.generator.manual_seed(seed)

    def _weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """([R, row_blocks, rows, out] normalised weights, [R, row_blocks, out] output scales)."""
        if self.tiles is not None:
            return self.tiles.weights, self.tiles.out_scale
        weights, weight_max = normalised_weights(self.weight, self.settings.rows, self.settings.cols,
                                                 self.weight_scaling)
        if self.training and self.noise.weight_noise != "none":
            if self.noise.weight_noise == "additive":
                sigma = torch.full((), self.noise.weight_sigma)
            else:
                sigma = pcm_sigma_normalised(weights, self.g_max_uS, self.noise.pcm_scale)
            draw = torch.randn(weights.shape, generator=self.generator)
            weights = weights + sigma * draw
        return weights[None], weight_max[None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights, out_scale = self._weights()
        n_real = weights.shape[0]
        if x.shape[-1] != self.in_features or x.shape[0] % n_real:
            raise ValueError(f"{self.name or 'TwinLinear'}: expected [k * {n_real}, ..., {self.in_features}] "
                             f"input, got {tuple(x.shape)}")
        lead = x.shape[:-1]
        s = self.settings
        row_blocks = weights.shape[1]
        flat = x.reshape(n_real, -1, self.in_features).to(torch.float32)
        n_tok = flat.shape[1]
        padded = F.pad(flat, (0, row_blocks * s.rows - self.in_features))
        blocks = padded.view(n_real, n_tok, row_blocks, s.rows).transpose(1, 2)  # [R, B, T, rows]
        with torch.no_grad():
            in_scale = (blocks.abs().amax(dim=-1, keepdim=True) if s.noise_management
                        else torch.ones(blocks.shape[:-1] + (1,)))
            in_scale = torch.where(in_scale > 0, in_scale, torch.ones_like(in_scale))
        noisy = self.training and self.out_noise > 0
        noise = (torch.randn((n_real, row_blocks, n_tok, self.out_features), generator=self.generator)
                 if noisy else None)
        out, clipped = self._pass(blocks, in_scale, weights, out_scale, noise)
        active = clipped.any(dim=1, keepdim=True)  # [R, 1, T, 1]: tokens with a clipped tile
        for _ in range(s.bound_iterations):
            if not bool(active.any()):
                break
            in_scale = torch.where(clipped, in_scale * 2.0, in_scale)
            again, clipped = self._pass(blocks, in_scale, weights, out_scale, noise)
            out = torch.where(active[:, 0], again, out)
            clipped = clipped & active
            active = clipped.any(dim=1, keepdim=True)
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*lead, self.out_features).to(x.dtype)

    def _pass(self, blocks, in_scale, weights, out_scale, noise):
        """One DAC -> MVM -> ADC pass: ([R, T, out] output, [R, B, T, 1] clipped tile inputs)."""
        s = self.settings
        # Levels as the DAC kernel computes them, x * (1 / (scale * step)) in float32: the
        # abs-max input sits on an exact tie once bound management doubles the scale.
        to_steps = (1.0 / (in_scale * torch.tensor(s.dac_step, dtype=torch.float32))).detach()
        x_quantised, _ = ste_round_clip(blocks / in_scale, s.dac_step, s.dac_levels, blocks.detach() * to_steps)
        y = torch.matmul(x_quantised, weights)  # [R, B, T, out]
        if noise is not None:
            y = y + self.out_noise * noise
        y_quantised, clipped = ste_round_clip(y, s.adc_step, s.adc_levels)
        out = (y_quantised * in_scale * out_scale[:, :, None, :]).sum(dim=1)
        return out, clipped.any(dim=-1, keepdim=True)

    def extra_repr(self) -> str:
        mode = f"programmed x{self.tiles.realisations}" if self.tiles is not None else self.noise.weight_noise
        return f"in_features={self.in_features}, out_features={self.out_features}, mode={mode}, name={self.name!r}"
