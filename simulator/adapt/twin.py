"""Models whose analog projections run through the differentiable periphery twin.

Two sources of analog weights (see `simulator.adapt.periphery`): noise injection from
the model's own weights (chip-agnostic LoRA, AHWA), or programmed realisations read from
an inference model built by `simulator.analog.layer.convert_to_analog` (chip-specific LoRA).
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from simulator.adapt.periphery import NoiseInjection, TileState, TwinLinear
from simulator.analog.layer import AnalogLinear
from simulator.errors import UserError
from simulator.hw.schema import HwConfig


def tile_state(layer: AnalogLinear) -> TileState:
    """A frozen copy of `layer`'s realisations at its current time (built on first use).

    Copied because `set_time` overwrites the layer's buffers in place."""
    if layer._tiles is None:
        layer.set_time(layer.t_s)
    tiles = layer._tiles
    n_real, row_blocks = tiles.out_scale.shape[:2]
    weights = tiles.weights.reshape(n_real, row_blocks, -1, layer.out_features).clone()
    return TileState(weights, torch.from_numpy(tiles.out_scale.copy()))


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child_name = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child_name, module)


def _linear(model: nn.Module, name: str) -> nn.Linear:
    try:
        module = model.get_submodule(name)
    except AttributeError:
        raise UserError(f"analog projection {name!r}: no such module in the model") from None
    if not isinstance(module, nn.Linear):
        raise UserError(f"analog projection {name!r}: expected an nn.Linear, found {type(module).__name__}")
    return module


def convert_to_twin(model: nn.Module, names, hw: HwConfig, *, noise: NoiseInjection | None = None,
                    programmed: nn.Module | None = None, seed: int = 0) -> nn.Module:
    """A deep copy of `model` with each projection in `names` a TwinLinear.

    `programmed`: an inference model from `convert_to_analog` over the same names, at the
    drift time wanted; its realisations are frozen into the twin. Otherwise `noise` is
    injected in training mode. Parameters of the copy are the copy's own (tied weights
    stay tied)."""
    converted = copy.deepcopy(model)
    for index, name in enumerate(names):
        linear = _linear(converted, name)
        tiles = None
        if programmed is not None:
            layer = programmed.get_submodule(name)
            if not isinstance(layer, AnalogLinear):
                raise ValueError(f"{name}: the programmed model has no AnalogLinear here")
            tiles = tile_state(layer)
        _replace(converted, name, TwinLinear(linear, hw.analog, noise=noise, tiles=tiles, name=name,
                                             seed=seed * 1_000_003 + index))
    return converted


def twin_layers(model: nn.Module) -> list[TwinLinear]:
    return [module for module in model.modules() if isinstance(module, TwinLinear)]


def reseed_noise(model: nn.Module, seed: int, step: int) -> None:
    """Give every twin layer a noise stream determined by (seed, step, layer index), so a
    resumed run draws the same noise as an uninterrupted one."""
    for index, layer in enumerate(twin_layers(model)):
        layer.reseed(hash_words(seed, step, index))


def hash_words(*words: int) -> int:
    """A 63-bit seed from a few non-negative ints, stable across runs and platforms."""
    return int(np.random.SeedSequence(list(words)).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
