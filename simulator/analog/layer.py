"""AnalogLinear: an nn.Linear programmed onto crossbar tiles, one copy per chip realisation.

`from_linear` programs the weights once per seed (programming noise, drift exponents,
faults); `set_time(t_s)` turns that state into the effective weights at time t (drift,
one read-noise realisation, drift-compensation gains) once, so forward calls only run
the periphery. A layer starts at t = 0; that state is built on the first forward unless
set_time comes first. Forward takes x with leading dim len(seeds) * b; slice k (rows
k*b:(k+1)*b) runs on realisation k, so several noise seeds evaluate in one batched call.

Per-layer seeds derive from (seed, layer name), so two layers never share noise and a
layer's noise does not depend on which other layers are analog.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from simulator.analog import device as dev
from simulator.analog.periphery import TileWeights, Workspace, analog_matmul, periphery_settings
from simulator.analog.rng import Stream, check_seeds, generator, stream_key, time_words
from simulator.errors import UserError
from simulator.hw.schema import HwConfig


class AnalogLinear(nn.Module):
    """y = x W^T + b computed through the analog tile model of `hw.analog`."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None, hw: HwConfig,
                 seeds, name: str = "", workspace: Workspace | None = None):
        super().__init__()
        self._workspace = workspace if workspace is not None else Workspace()
        analog = hw.analog
        self.name = name
        self.seeds = check_seeds(seeds)
        self.out_features, self.in_features = weight.shape
        self._device = analog.device
        self._settings = periphery_settings(analog)
        dev.check_choice(analog.periphery.drift_compensation, dev.DRIFT_COMPENSATIONS,
                         "analog.periphery.drift_compensation")
        self._compensation = analog.periphery.drift_compensation
        weight = np.ascontiguousarray(weight, dtype=np.float32)
        self._weight_max = dev.weight_max_abs(weight, analog.rows, analog.cols, analog.periphery.weight_scaling)
        self._programmed = [dev.program_pair(weight, self._weight_max, analog.rows, self._device,
                                             generator(seed, name, Stream.PROGRAMMING))
                            for seed in self.seeds]
        self._bias = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32)
        self._stream_keys = np.array([stream_key(seed, name, Stream.MVM) for seed in self.seeds],
                                     dtype=np.uint64)
        self._mvm_calls = 0
        self.t_s = 0.0
        self._tiles: TileWeights | None = None  # state at t_s; built by set_time or first forward

    @classmethod
    def from_linear(cls, linear: nn.Linear, hw: HwConfig, seeds, name: str = "",
                    workspace: Workspace | None = None) -> "AnalogLinear":
        weight = linear.weight.detach().to(torch.float32).cpu().numpy()
        bias = None if linear.bias is None else linear.bias.detach().to(torch.float32).cpu().numpy()
        return cls(weight, bias, hw, seeds, name, workspace)

    @property
    def realisations(self) -> int:
        return len(self.seeds)

    def set_time(self, t_s: float) -> None:
        """Move every realisation to time t_s after programming; restarts the MVM noise stream,
        so (seeds, t_s, inputs) alone determine the outputs. The state at t_s depends only on
        (seeds, name, t_s), so setting the current time again only restarts the stream."""
        dev.effective_time_s(t_s, self._device)  # reject a bad time before overwriting the state
        if self._tiles is None or float(t_s) != self.t_s:
            self._tiles = self._tiles_at(float(t_s), self._tiles)
        self.t_s = float(t_s)
        self._mvm_calls = 0

    def _tiles_at(self, t_s: float, previous: TileWeights | None = None) -> TileWeights:
        """Every realisation's state at t, written straight into the batched arrays: those
        of `previous` (overwritten: fresh pages cost more than the pass itself) or new ones."""
        row_blocks, rows, _ = self._programmed[0].g_pos_uS.shape
        shape = (self.realisations * row_blocks, rows, self.out_features)
        per_read = self._settings.read_noise_gemm
        with_variance = per_read and dev.has_read_noise(self._device)
        if previous is not None:
            weights = previous.weights.numpy()
            variance = previous.read_variance.numpy() if with_variance else None
        else:
            weights = np.empty(shape, dtype=np.float32)
            variance = np.empty(shape, dtype=np.float32) if with_variance else None
        out_scales = np.empty((self.realisations, row_blocks, self.out_features), dtype=np.float32)
        for k, (seed, pair) in enumerate(zip(self.seeds, self._programmed)):
            own = slice(k * row_blocks, (k + 1) * row_blocks)
            read_rng = None if per_read else generator(seed, self.name, Stream.READ_NOISE, *time_words(t_s))
            reference, now = dev.weights_at(pair, t_s, self._device, self.in_features, read_rng, weights[own],
                                            None if variance is None else variance[own])
            out_scales[k] = self._weight_max * dev.compensation_factors(
                reference, now, self._settings.cols, self._compensation)
        return TileWeights(torch.from_numpy(weights),
                           None if variance is None else torch.from_numpy(variance), out_scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features or x.shape[0] % self.realisations:
            raise ValueError(f"{self.name or 'AnalogLinear'}: expected [k * {self.realisations}, ..., "
                             f"{self.in_features}] input, got {tuple(x.shape)}")
        if self._tiles is None:
            self._tiles = self._tiles_at(self.t_s)
        lead = x.shape[:-1]
        flat = x.detach().to(torch.float32).reshape(self.realisations, -1, self.in_features)
        out = analog_matmul(np.ascontiguousarray(flat.numpy()), self._tiles, self._bias_or_empty(),
                            self._settings, self._stream_keys, self._mvm_calls, self._workspace)
        self._mvm_calls += 1
        return torch.from_numpy(out).reshape(*lead, self.out_features).to(x.dtype)

    def _bias_or_empty(self) -> np.ndarray:
        return self._bias if self._bias is not None else np.empty(0, dtype=np.float32)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"realisations={self.realisations}, t_s={self.t_s:g}, name={self.name!r}")


def convert_to_analog(model: nn.Module, names, hw: HwConfig, seeds) -> nn.Module:
    """A deep copy of `model` with the nn.Linear at each dotted path in `names` made analog."""
    converted = copy.deepcopy(model)
    workspace = Workspace()  # the analog layers run one at a time: they share scratch
    for name in names:
        try:
            linear = converted.get_submodule(name)
        except AttributeError:
            raise UserError(f"analog projection {name!r}: no such module in the model") from None
        if not isinstance(linear, nn.Linear):
            raise UserError(f"analog projection {name!r}: expected an nn.Linear, "
                            f"found {type(linear).__name__}")
        parent_name, _, child_name = name.rpartition(".")
        parent = converted.get_submodule(parent_name) if parent_name else converted
        setattr(parent, child_name, AnalogLinear.from_linear(linear, hw, seeds, name, workspace))
    return converted


def set_time(model: nn.Module, t_s: float) -> None:
    """Move every AnalogLinear in `model` to time t_s after programming."""
    for module in model.modules():
        if isinstance(module, AnalogLinear):
            module.set_time(t_s)
