"""Sensitivity profile: how much each projection alone hurts (analog) or helps (digital).

For every projection p and drift time t, over several chip realisations (seeds):
  (a) analog alone: p analog, everything else FP;
  (b) digital alone: p digital, everything else analog.
Each is a *degradation*: the metric's change in its bad direction relative to the FP
model (delta perplexity for LMs, so larger is worse), one value per seed.

The measurement itself is delegated to a probe: anything with `metric`, `fp`,
`projections` and `degradation(analog_names, times_s) -> array [times, seeds]`; the
search (simulator.analysis.search) verifies its mappings with the same probe. `LmSuffixProbe` is the
fast GPT-2 one: it caches the FP activations at every block input once and re-runs only
the blocks from the first analog projection on, with all seeds batched in one forward.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import h5py

import numpy as np
import torch
import torch.nn.functional as F

from simulator.atomic import atomic_output

# Metrics where a larger value is better; degradation is then fp - value.
HIGHER_IS_BETTER = frozenset({"embedding_cosine", "top1_agreement", "accuracy"})
_LAYER_INDEX = re.compile(r"\.(\d+)\.")


def degradation(metric: str, fp: float, values: np.ndarray) -> np.ndarray:
    """Change of `values` against the FP reference, positive meaning worse."""
    values = np.asarray(values, dtype=np.float64)
    return fp - values if metric in HIGHER_IS_BETTER else values - fp


def projection_layer(name: str) -> int:
    """Block index in a projection name (`transformer.h.3.mlp.c_fc` -> 3); -1 outside blocks."""
    match = _LAYER_INDEX.search(name)
    return int(match.group(1)) if match else -1


def projection_type(name: str) -> str:
    """The name with its block prefix stripped: `transformer.h.3.attn.c_proj` -> `attn.c_proj`."""
    match = _LAYER_INDEX.search(name)
    return name[match.end():] if match else name


class Probe(Protocol):
    """Measures the model with a set of projections analog (the rest FP)."""

    metric: str
    fp: float
    projections: tuple[str, ...]

    def degradation(self, analog_names: frozenset[str], times_s: Sequence[float]) -> np.ndarray:
        """Degradation per (time, seed), shape [len(times_s), seeds]."""


@dataclass(frozen=True)
class ProfileResult:
    """Raw per-seed degradations; every summary (ranking, per block, per type) derives from them."""

    metric: str
    fp: float
    times_s: tuple[float, ...]
    projections: tuple[str, ...]  # model order
    analog_alone: np.ndarray  # [projections, times, seeds]
    digital_alone: np.ndarray  # [projections, times, seeds]
    all_analog: np.ndarray  # [times, seeds], the reference that digital-alone recovers from

    @property
    def seeds(self) -> int:
        return int(self.all_analog.shape[1])

    def analog_alone_at(self, t_index: int = -1) -> np.ndarray:
        """Mean analog-alone degradation per projection at one time (default: the horizon)."""
        return self.analog_alone[:, t_index, :].mean(axis=1)

    def ranking(self) -> list[int]:
        """Projection indices by analog-alone degradation at the horizon, most sensitive first."""
        return sorted(range(len(self.projections)), key=lambda i: -self.analog_alone_at()[i])

    def to_dict(self) -> dict:
        entries = [self._projection_entry(i) for i in self.ranking()]
        return {
            "metric": self.metric, "fp": self.fp, "times_s": list(self.times_s),
            "seeds": self.seeds,
            "all_analog": [_mean_std_entry(t, self.all_analog[k]) for k, t in enumerate(self.times_s)],
            "projections": entries,
            "per_block": _aggregate(entries, "layer"),
            "per_type": _aggregate(entries, "type"),
        }

    def _projection_entry(self, i: int) -> dict:
        name = self.projections[i]
        per_time = []
        for k, t in enumerate(self.times_s):
            analog_mean, analog_std = _mean_std(self.analog_alone[i, k])
            digital_mean, digital_std = _mean_std(self.digital_alone[i, k])
            per_time.append({"t_s": t, "analog_alone_delta": analog_mean, "analog_alone_std": analog_std,
                             "digital_alone_delta": digital_mean, "digital_alone_std": digital_std})
        horizon = per_time[-1]
        return {"name": name, "layer": projection_layer(name), "type": projection_type(name),
                "analog_alone_delta": horizon["analog_alone_delta"],
                "digital_alone_delta": horizon["digital_alone_delta"],
                "std": horizon["analog_alone_std"], "per_time": per_time}


def _mean_std(values: np.ndarray) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single seed)."""
    values = np.asarray(values, dtype=np.float64)
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return float(values.mean()), std


def _mean_std_entry(t_s: float, values: np.ndarray) -> dict:
    mean, std = _mean_std(values)
    return {"t_s": t_s, "delta": mean, "std": std}


def _aggregate(entries: list[dict], key: str) -> list[dict]:
    """Horizon figures summed per block or per type, most sensitive group first."""
    groups: dict = {}
    for entry in entries:
        group = groups.setdefault(entry[key], {key: entry[key], "projections": 0,
                                               "analog_alone_delta_sum": 0.0,
                                               "digital_alone_delta_mean": 0.0})
        group["projections"] += 1
        group["analog_alone_delta_sum"] += entry["analog_alone_delta"]
        group["digital_alone_delta_mean"] += entry["digital_alone_delta"]
    for group in groups.values():
        group["digital_alone_delta_mean"] /= group["projections"]
    return sorted(groups.values(), key=lambda g: -g["analog_alone_delta_sum"])


def profile_sensitivity(probe: Probe, times_s: Sequence[float],
                        progress: Callable[[str], None] | None = None) -> ProfileResult:
    """Measure (a) analog alone and (b) digital alone for every projection of the probe's model."""
    everything = frozenset(probe.projections)
    analog_alone, digital_alone = [], []
    for name in probe.projections:
        if progress:
            progress(name)
        analog_alone.append(probe.degradation(frozenset({name}), times_s))
        digital_alone.append(probe.degradation(everything - {name}, times_s))
    return ProfileResult(metric=probe.metric, fp=probe.fp, times_s=tuple(float(t) for t in times_s),
                         projections=tuple(probe.projections),
                         analog_alone=np.stack(analog_alone), digital_alone=np.stack(digital_alone),
                         all_analog=probe.degradation(everything, times_s))


class LmSuffixProbe:
    """Perplexity degradation of a nanoGPT-style GPT-2 (`transformer.wte/wpe/h/ln_f`, `lm_head`).

    FP hidden states at every block input (and at ln_f) are cached once per eval batch; a
    run with analog projections starts at the first block that holds one, so profiling an
    analog projection in block i costs only blocks i..end. All seeds go in one forward:
    the cached batch is repeated len(seeds) times along the batch dimension, slice k
    running on chip realisation k (the AnalogLinear convention).
    """

    metric = "perplexity"

    def __init__(self, model: torch.nn.Module, hw, seeds: Sequence[int], input_ids: torch.Tensor,
                 targets: torch.Tensor, *, windows_per_batch: int = 4,
                 convert=None, set_time=None):
        from simulator.analog import layer as analog_layer
        self.model = model.eval()
        self.hw = hw
        self.seeds = list(seeds)
        self.projections = tuple(model.projection_names())
        self._convert = convert or analog_layer.convert_to_analog
        self._set_time = set_time or analog_layer.set_time
        self._n_blocks = len(model.transformer.h)
        self._batches = [(input_ids[i:i + windows_per_batch], targets[i:i + windows_per_batch])
                         for i in range(0, input_ids.shape[0], windows_per_batch)]
        self._block_inputs = [self._capture_block_inputs(ids) for ids, _ in self._batches]
        self._tokens = int(targets.numel())
        fp_nll = sum(self._nll_per_seed(self.model, inputs, tgt, start=0, repeats=1)[0]
                     for inputs, (_, tgt) in zip(self._block_inputs, self._batches))
        self.fp = float(np.exp(fp_nll / self._tokens))

    def degradation(self, analog_names: frozenset[str], times_s: Sequence[float]) -> np.ndarray:
        if not analog_names:
            return np.zeros((len(times_s), len(self.seeds)))
        start = min(self._block_of(name) for name in analog_names)
        model = self._convert(self.model, sorted(analog_names), self.hw, self.seeds)
        rows = []
        for t_s in times_s:
            self._set_time(model, float(t_s))
            nll = sum(self._nll_per_seed(model, inputs, tgt, start, len(self.seeds))
                      for inputs, (_, tgt) in zip(self._block_inputs, self._batches))
            rows.append(np.exp(nll / self._tokens) - self.fp)
        return np.array(rows)

    def _block_of(self, name: str) -> int:
        layer = projection_layer(name)
        return self._n_blocks if layer < 0 else layer  # lm_head: only ln_f + head re-run

    @torch.no_grad()
    def _capture_block_inputs(self, input_ids: torch.Tensor) -> list[torch.Tensor]:
        """Hidden states entering block 0..n-1 and ln_f, from one FP forward."""
        captured = []
        modules = list(self.model.transformer.h) + [self.model.transformer.ln_f]
        handles = [m.register_forward_pre_hook(lambda _m, args: captured.append(args[0].clone()))
                   for m in modules]
        try:
            self.model(input_ids)
        finally:
            for handle in handles:
                handle.remove()
        return captured

    @torch.no_grad()
    def _nll_per_seed(self, model, block_inputs: list[torch.Tensor], targets: torch.Tensor,
                      start: int, repeats: int) -> np.ndarray:
        """Summed next-token NLL per seed, running `model` from block `start` on."""
        hidden = block_inputs[start].repeat(repeats, 1, 1)
        for block in model.transformer.h[start:]:
            hidden = block(hidden)
        logits = model.lm_head(model.transformer.ln_f(hidden))
        nll = F.cross_entropy(logits.flatten(0, 1).float(), targets.repeat(repeats, 1).flatten(),
                              reduction="none")
        return nll.view(repeats, -1).sum(dim=1).double().numpy()


class EvaluateProbe:
    """Any model family through `evaluate_accuracy` (full forwards; BERT-family encoders)."""

    def __init__(self, loaded_model, hw, seeds: Sequence[int], max_batches: int | None = None):
        from simulator.accuracy.evaluate import evaluate_accuracy
        self._evaluate = evaluate_accuracy
        self._loaded, self._hw, self._seeds, self._max_batches = loaded_model, hw, list(seeds), max_batches
        self.projections = tuple(name for name, module in loaded_model.model.named_modules()
                                 if isinstance(module, torch.nn.Linear))
        reference = self._run(frozenset(), [0.0])
        self.metric, self.fp = reference.metric, float(reference.fp)

    def degradation(self, analog_names: frozenset[str], times_s: Sequence[float]) -> np.ndarray:
        if not analog_names:
            return np.zeros((len(times_s), len(self._seeds)))
        result = self._run(analog_names, times_s)
        return np.array([degradation(result.metric, result.fp, row["values"]) for row in result.results])

    def _run(self, analog_names: frozenset[str], times_s: Sequence[float]):
        targets = {name: "analog" if name in analog_names else "digital" for name in self.projections}
        return self._evaluate(self._loaded, self._hw, targets, list(times_s), self._seeds,
                              max_batches=self._max_batches)


def write_profile_h5(result: ProfileResult, path: str) -> None:
    """Raw per-seed arrays plus names and times; written beside `path`, then renamed."""
    with atomic_output(path, ".h5") as tmp, h5py.File(tmp, "w") as f:
        f.attrs["metric"] = result.metric
        f.attrs["fp"] = result.fp
        f["times_s"] = np.asarray(result.times_s)
        f["projections"] = np.asarray(result.projections, dtype=h5py.string_dtype())
        f["analog_alone"] = result.analog_alone
        f["digital_alone"] = result.digital_alone
        f["all_analog"] = result.all_analog
        from simulator.report.h5 import describe_file, label_axes
        describe_file(f, "aimcsim profile: change of the metric vs FP per projection run analog "
                         "alone (rest FP) and digital alone (rest analog)")
        label_axes(f, {"times_s": ("time",), "projections": ("projection",),
                       "analog_alone": ("projection", "time", "seed"),
                       "digital_alone": ("projection", "time", "seed"), "all_analog": ("time", "seed")},
                   units={"times_s": "s"})


def make_probe(loaded_model, hw, seeds: Sequence[int], max_tokens: int | None = None) -> Probe:
    """The fast suffix probe for GPT-2 (on the held-out LM text), full evaluations otherwise."""
    if loaded_model.family != "gpt2":
        return EvaluateProbe(loaded_model, hw, seeds)
    from simulator.accuracy.lm import TOKENS_PER_FORWARD, lm_eval_set
    eval_set = lm_eval_set(loaded_model, max_tokens=max_tokens)
    window = eval_set.inputs.shape[1]
    return LmSuffixProbe(loaded_model.model, hw, seeds, torch.from_numpy(eval_set.inputs),
                         torch.from_numpy(eval_set.targets),
                         windows_per_batch=max(1, TOKENS_PER_FORWARD // (len(seeds) * window)))
