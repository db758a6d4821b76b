"""Digital low-rank adapters beside analog projections: y = base(x) + (alpha / r) B(A(dropout(x))).

The base is whatever runs the projection (the training twin `TwinLinear`, the inference
`AnalogLinear`, or a plain `nn.Linear`); the adapter product is computed digitally in
FP32. An adapter holds `sets` independent (A, B) pairs: 1 for an adapter shared by every
chip, or one per chip realisation (chip-specific), in which case slice k of the leading
dim (the AnalogLinear convention) uses set k. B starts at zero, so a fresh adapter
leaves the output unchanged.
"""
from __future__ import annotations

import fnmatch
import math
import zlib

import torch
from torch import nn

from simulator.errors import UserError


class LoRA(nn.Module):
    def __init__(self, base: nn.Module, in_features: int, out_features: int, rank: int, alpha: float,
                 dropout: float = 0.0, sets: int = 1, seed: int = 0, name: str = ""):
        super().__init__()
        if rank < 1:
            raise UserError(f"--rank: expected a positive integer, got {rank}")
        self.base = base
        self.name = name
        self.rank, self.alpha, self.sets = rank, float(alpha), sets
        self.in_features, self.out_features = in_features, out_features
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        generator = torch.Generator().manual_seed(seed)
        bound = 1.0 / math.sqrt(in_features)  # nn.Linear's kaiming-uniform(a=sqrt(5)) bound
        self.lora_A = nn.Parameter((torch.rand((sets, rank, in_features), generator=generator) * 2 - 1) * bound)
        self.lora_B = nn.Parameter(torch.zeros((sets, out_features, rank)))

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        """(alpha / r) B(A(dropout(x))) with the leading dim split into `sets` slices."""
        if x.shape[0] % self.sets:
            raise ValueError(f"{self.name}: leading dim {x.shape[0]} is not a multiple of {self.sets} adapter sets")
        flat = self.dropout(x.reshape(self.sets, -1, self.in_features).to(torch.float32))
        low = torch.bmm(flat, self.lora_A.transpose(1, 2))
        return self.scale * torch.bmm(low, self.lora_B.transpose(1, 2)).reshape(*x.shape[:-1], self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.delta(x).to(x.dtype)

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}, sets={self.sets}, name={self.name!r}"


def match_targets(names: list[str], patterns: list[str]) -> list[str]:
    """Names matching any glob, in model order; a glob matching nothing is a UserError."""
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(name, pattern) for name in names):
            raise UserError(f"--targets: {pattern!r} matches no analog projection "
                            f"(there are {len(names)}, e.g. {names[0]!r})" if names else
                            f"--targets: {pattern!r}: the model has no analog projection")
    return [name for name in names if any(fnmatch.fnmatchcase(name, p) for p in patterns)]


def adapter_seed(seed: int, name: str) -> int:
    return (seed * 0x9E3779B1 + zlib.crc32(name.encode("utf-8"))) % (2 ** 63)


def attach_lora(model: nn.Module, names: list[str], rank: int, alpha: float, dropout: float = 0.0,
                sets: int = 1, seed: int = 0) -> dict[str, LoRA]:
    """Wrap the module at each dotted path in `names` with a LoRA (in place); returns them by name."""
    adapters = {}
    for name in names:
        base = model.get_submodule(name)
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        adapter = LoRA(base, base.in_features, base.out_features, rank, alpha, dropout, sets,
                       adapter_seed(seed, name), name)
        setattr(parent, child, adapter)
        adapters[name] = adapter
    return adapters


def lora_modules(model: nn.Module) -> dict[str, LoRA]:
    return {module.name: module for module in model.modules() if isinstance(module, LoRA)}


def freeze_all_but_adapters(model: nn.Module) -> list[nn.Parameter]:
    """requires_grad only on adapter matrices; returns them (the optimiser's parameters)."""
    trainable = []
    for name, parameter in model.named_parameters():
        is_adapter = name.endswith(("lora_A", "lora_B"))
        parameter.requires_grad_(is_adapter)
        if is_adapter:
            trainable.append(parameter)
    return trainable
