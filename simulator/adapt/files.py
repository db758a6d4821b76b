"""Adapter files: safetensors with the trained tensors and JSON metadata saying what they fit.

LoRA files hold `<projection>.lora_A` [sets, r, in] and `<projection>.lora_B` [sets, out, r];
AHWA files hold the fine-tuned state dict (programmed instead of the FP weights).
Metadata: format, method, mode, model (name and weight fingerprint), hw, rank, alpha,
chips (chip-specific: the chip seed of each set), t_train_s. Loading checks everything
against the model it is applied to; any mismatch is a one-line UserError.
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from simulator.adapt.lora import LoRA
from simulator.atomic import atomic_output
from simulator.errors import UserError

FORMAT = "aimcsim-adapters-v1"


def model_fingerprint(model: nn.Module) -> str:
    """sha256 of the projection names, shapes and first weight rows: tells models apart cheaply."""
    digest = hashlib.sha256()
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            digest.update(f"{name}:{tuple(module.weight.shape)}".encode())
            digest.update(module.weight.detach()[0].to(torch.float32).numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class AdapterFile:
    path: str
    meta: dict
    tensors: dict[str, torch.Tensor]

    @property
    def method(self) -> str:
        return self.meta["method"]

    @property
    def chips(self) -> list[int] | None:
        return self.meta.get("chips") if self.meta.get("mode") == "specific" else None

    def projections(self) -> list[str]:
        return sorted({key.rsplit(".", 1)[0] for key in self.tensors}) if self.method == "lora" else []

    def check_model(self, loaded) -> None:
        if self.meta.get("fingerprint") != model_fingerprint(loaded.model):
            raise UserError(f"{self.path}: adapters were trained for model {self.meta.get('model')!r} "
                            f"(fingerprint {self.meta.get('fingerprint')}), not {loaded.name!r}")

    def programmed_model(self, fp_model: nn.Module) -> nn.Module:
        """The weights to program: AHWA's fine-tuned ones, or the FP model itself for LoRA."""
        if self.method != "hwa":
            return fp_model
        expected = fp_model.state_dict()
        for key, tensor in self.tensors.items():
            if key not in expected:
                raise UserError(f"{self.path}: tensor {key!r} is not a parameter of the model")
            if tuple(tensor.shape) != tuple(expected[key].shape):
                raise UserError(f"{self.path}: {key}: shape {tuple(tensor.shape)}, the model has "
                                f"{tuple(expected[key].shape)}")
        missing = sorted(set(expected) - set(self.tensors))
        if missing:
            raise UserError(f"{self.path}: {len(missing)} model tensor(s) missing, first {missing[0]!r}")
        tuned = copy.deepcopy(fp_model)
        tuned.load_state_dict(self.tensors)
        return tuned.eval()

    def attach(self, model: nn.Module, analog_names: list[str], seeds: list[int]) -> dict[str, LoRA]:
        """Wrap each adapted projection of `model` (analog, realisations = `seeds`) with its
        adapter. Chip-specific files give realisation k the set trained for chip seeds[k]."""
        if self.method != "lora":
            return {}
        sets = self._set_indices(seeds)
        adapters = {}
        for name in self.projections():
            if name not in analog_names:
                raise UserError(f"{self.path}: adapter {name!r} matches no analog projection of the "
                                f"mapping (e.g. {analog_names[0]!r})" if analog_names else
                                f"{self.path}: the mapping has no analog projection for adapter {name!r}")
            base = model.get_submodule(name)
            a, b = self.tensors[f"{name}.lora_A"], self.tensors[f"{name}.lora_B"]
            rank = int(self.meta["rank"])
            want_a, want_b = (rank, base.in_features), (base.out_features, rank)
            if a.dim() != 3 or tuple(a.shape[1:]) != want_a or b.dim() != 3 or tuple(b.shape[1:]) != want_b \
                    or a.shape[0] != b.shape[0]:
                raise UserError(f"{self.path}: {name}: adapter shapes A {tuple(a.shape)}, B {tuple(b.shape)}; "
                                f"the projection needs A [sets, {want_a[0]}, {want_a[1]}], "
                                f"B [sets, {want_b[0]}, {want_b[1]}]")
            if sets is not None and a.shape[0] <= max(sets):
                raise UserError(f"{self.path}: {name}: {a.shape[0]} adapter sets, chips need {max(sets) + 1}")
            chosen = (slice(None) if sets is None else sets)
            adapter = LoRA(base, base.in_features, base.out_features, rank, float(self.meta["alpha"]),
                           sets=len(seeds) if sets is not None else 1, name=name)
            with torch.no_grad():
                adapter.lora_A.copy_(a[chosen])
                adapter.lora_B.copy_(b[chosen])
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, adapter.eval())
            adapters[name] = adapter
        return adapters

    def _set_indices(self, seeds: list[int]) -> list[int] | None:
        chips = self.chips
        if chips is None:
            return None
        unknown = [s for s in seeds if s not in chips]
        if unknown:
            raise UserError(f"{self.path}: chip-specific adapters exist for chips {chips}; seed {unknown[0]} "
                            f"has none (use --seeds N with N <= {len(chips)} when chips are 0..N-1)")
        return [chips.index(s) for s in seeds]


def save_adapters(path: str, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    payload = {key: json.dumps(value) for key, value in {**meta, "format": FORMAT}.items()}
    with atomic_output(path, ".safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=payload)


def load_adapters(path: str) -> AdapterFile:
    try:
        with safe_open(path, framework="pt") as handle:
            raw_meta = handle.metadata() or {}
        tensors = load_file(path)
    except FileNotFoundError:
        raise UserError(f"--adapters {path}: no such file") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"--adapters {path}: not a safetensors adapter file ({exc})") from None
    try:
        meta = {key: json.loads(value) for key, value in raw_meta.items()}
    except json.JSONDecodeError:
        meta = {}
    if meta.get("format") != FORMAT:
        raise UserError(f"--adapters {path}: not an aimcsim adapter file (metadata format "
                        f"{meta.get('format')!r}, expected {FORMAT!r})")
    if meta.get("method") not in ("lora", "hwa"):
        raise UserError(f"--adapters {path}: method {meta.get('method')!r}, expected lora or hwa")
    if meta["method"] == "lora":
        for key in tensors:
            if not key.endswith((".lora_A", ".lora_B")):
                raise UserError(f"--adapters {path}: tensor {key!r} is neither <projection>.lora_A nor .lora_B")
        for name in {key.rsplit(".", 1)[0] for key in tensors}:
            if f"{name}.lora_A" not in tensors or f"{name}.lora_B" not in tensors:
                raise UserError(f"--adapters {path}: {name} has only one of lora_A / lora_B")
    return AdapterFile(path, meta, tensors)
