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

import collections
import contextlib
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


def profile_sets(projections: Sequence[str]) -> list[frozenset[str]]:
    """The runs of a profile: each projection analog alone, each digital alone, all analog."""
    everything = frozenset(projections)
    return ([frozenset({name}) for name in projections] + [everything - {name} for name in projections]
            + [everything])


def measure_sets(probe: Probe, analog_sets: Sequence[frozenset[str]], times_s: Sequence[float],
                 progress: Callable[[int], None] | None = None) -> list[np.ndarray]:
    """probe.degradation of every set ([times, seeds] each), through the probe's batched
    `degradations` when it has one; `progress(n)` as n more (set, time) runs finish."""
    if hasattr(probe, "degradations"):
        return probe.degradations(analog_sets, times_s, progress=lambda: progress and progress(1))
    results = []
    for names in analog_sets:
        results.append(probe.degradation(names, times_s))
        if progress:
            progress(len(times_s))
    return results


def profile_result(metric: str, fp: float, projections: Sequence[str], times_s: Sequence[float],
                   measured: Sequence[np.ndarray]) -> ProfileResult:
    """Assemble the measurements of `profile_sets(projections)` (in that order)."""
    count = len(projections)
    return ProfileResult(metric=metric, fp=fp, times_s=tuple(float(t) for t in times_s),
                         projections=tuple(projections),
                         analog_alone=np.stack(measured[:count]), digital_alone=np.stack(measured[count:2 * count]),
                         all_analog=measured[2 * count])


def profile_sensitivity(probe: Probe, times_s: Sequence[float],
                        progress: Callable[[int], None] | None = None) -> ProfileResult:
    """Measure (a) analog alone and (b) digital alone for every projection of the probe's model."""
    measured = measure_sets(probe, profile_sets(probe.projections), times_s, progress)
    return profile_result(probe.metric, probe.fp, probe.projections, times_s, measured)


class LmSuffixProbe:
    """Perplexity degradation of a nanoGPT-style GPT-2 (`transformer.wte/wpe/h/ln_f`, `lm_head`).

    FP hidden states at every block input (and at ln_f) are cached once per eval batch; a
    run with analog projections starts at the first block that holds one, so profiling an
    analog projection in block i costs only blocks i..end. All seeds go in one forward:
    the cached batch is repeated len(seeds) times along the batch dimension, slice k
    running on chip realisation k (the AnalogLinear convention).

    Each projection is programmed once (`layer_factory(linear, hw, seeds, name)`, one
    realisation per seed) and moved to each drift time once: a projection's state for
    (seed, t) does not depend on which other projections are analog, so a run swaps the
    programmed layers of its set into the FP model, runs, and swaps the FP ones back.
    The layers' `set_time(t)` must restart their per-run noise, so a run's numbers equal
    those of a freshly converted copy.

    The hidden state entering block i depends only on t and on which projections *before*
    block i are analog. The block inputs of recent runs are kept (least recently used
    first out, within `cache_bytes`), so a run that agrees with a kept one on every
    projection before block i starts at block i from its inputs, as the FP cache serves
    runs with nothing analog before block i: each digital-alone run of the profile resumes
    from the all-analog run, a local-search move from the mapping it modifies.
    """

    metric = "perplexity"

    def __init__(self, model: torch.nn.Module, hw, seeds: Sequence[int], input_ids: torch.Tensor,
                 targets: torch.Tensor, *, windows_per_batch: int = 4, layer_factory=None,
                 cache_bytes: int = 1 << 30):
        self.model = model.eval()
        self.hw = hw
        self.seeds = list(seeds)
        self.projections = tuple(model.projection_names())
        self._make_layer = layer_factory or _analog_layer_factory()
        self._layers: dict[str, torch.nn.Module] = {}  # programmed once, on first use
        self._n_blocks = len(model.transformer.h)
        self._before = [frozenset(name for name in self.projections if self._block_of(name) < block)
                        for block in range(self._n_blocks + 1)]  # projections before each block input
        # (t, analog set) -> (first block kept, [block - first][batch] inputs), least recent first
        self._kept_runs: collections.OrderedDict[tuple[float, frozenset[str]], tuple[int, list]] = \
            collections.OrderedDict()
        self._cache_bytes = cache_bytes
        self._batches = [(input_ids[i:i + windows_per_batch], targets[i:i + windows_per_batch])
                         for i in range(0, input_ids.shape[0], windows_per_batch)]
        self._block_inputs = [self._capture_block_inputs(ids) for ids, _ in self._batches]
        self._tokens = int(targets.numel())
        fp_nll = sum(self._nll_per_seed(inputs[0], tgt, start=0)[0]
                     for inputs, (_, tgt) in zip(self._block_inputs, self._batches))
        self.fp = float(np.exp(fp_nll / self._tokens))

    @property
    def tokens(self) -> int:
        """Held-out tokens each run scores."""
        return self._tokens

    def degradation(self, analog_names: frozenset[str], times_s: Sequence[float]) -> np.ndarray:
        return self.degradations([analog_names], times_s)[0]

    def degradations(self, analog_sets: Sequence[frozenset[str]], times_s: Sequence[float],
                     progress: Callable[[], None] | None = None) -> list[np.ndarray]:
        """degradation() of every set, [times, seeds] each. Times are the outer loop, so each
        programmed projection moves to each time once; `progress()` after every run. The
        results do not depend on the order the sets run in."""
        results = [np.zeros((len(times_s), len(self.seeds))) for _ in analog_sets]
        # largest sets first: the all-analog run is then kept (and refreshed by every
        # digital-alone run that resumes from it) before the analog-alone runs come
        order = sorted(range(len(analog_sets)), key=lambda j: -len(analog_sets[j]))
        for k, t_s in enumerate(times_s):
            for j in order:
                if analog_sets[j]:
                    nll = self.nll_per_batch(analog_sets[j], float(t_s)).sum(axis=0) / self._tokens
                    with np.errstate(over="ignore"):  # a model the set destroys: perplexity inf (JSON null)
                        results[j][k] = np.exp(nll) - self.fp
                if progress:
                    progress()
        return results

    def nll_per_batch(self, analog_names: frozenset[str], t_s: float) -> np.ndarray:
        """Summed next-token NLL per (eval batch, seed) with `analog_names` analog at t_s."""
        start, kept = self._start(analog_names, t_s)
        layers = {name: self._layer(name) for name in sorted(analog_names)}
        for layer in layers.values():
            layer.set_time(t_s)  # cheap when already there: only restarts the noise stream
        recorded = []  # [batch][block - start]
        with _swapped(self.model, layers):
            nll = []
            for batch, (inputs, (_, targets)) in enumerate(zip(self._block_inputs, self._batches)):
                hidden = kept[batch] if kept is not None else inputs[start].repeat(len(self.seeds), 1, 1)
                nll.append(self._nll_per_seed(hidden, targets, start, recorded))
        self._keep(t_s, analog_names, start, [list(per_block) for per_block in zip(*recorded)])
        return np.stack(nll)

    def _start(self, analog_names: frozenset[str], t_s: float) -> tuple[int, list | None]:
        """The deepest block whose input is known for this run, and those inputs per batch
        (None: the FP ones). A kept run serves block i if it agrees on every projection before i."""
        best, inputs, best_key = min(self._block_of(name) for name in analog_names), None, None
        for (kept_t_s, kept_names), (first, per_block) in self._kept_runs.items():
            if kept_t_s != t_s:
                continue
            for block in range(first + len(per_block) - 1, max(best, first - 1), -1):
                before = self._before[block]
                if before & kept_names == before & analog_names:
                    best, inputs, best_key = block, per_block[block - first], (kept_t_s, kept_names)
                    break
        if best_key is not None:
            self._kept_runs.move_to_end(best_key)
        return best, inputs

    def _keep(self, t_s: float, analog_names: frozenset[str], start: int, per_block: list) -> None:
        """Keep a run's block inputs, dropping the least recently used runs beyond cache_bytes."""
        run_bytes = sum(h.numel() * h.element_size() for block in per_block for h in block)
        if run_bytes > self._cache_bytes:
            return
        self._kept_runs[t_s, analog_names] = (start, per_block)
        self._kept_runs.move_to_end((t_s, analog_names))
        while sum(h.numel() * h.element_size() for first, blocks in self._kept_runs.values()
                  for block in blocks for h in block) > self._cache_bytes:
            self._kept_runs.popitem(last=False)

    def _layer(self, name: str) -> torch.nn.Module:
        if name not in self._layers:
            self._layers[name] = self._make_layer(self.model.get_submodule(name), self.hw, self.seeds, name)
        return self._layers[name]

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
    def _nll_per_seed(self, hidden: torch.Tensor, targets: torch.Tensor, start: int,
                      recorded: list | None = None) -> np.ndarray:
        """Summed next-token NLL per seed, running the (swapped) model on the input `hidden`
        of block `start` ([seeds * windows, T, d]); `recorded` gets the block inputs."""
        model = self.model
        repeats = hidden.shape[0] // targets.shape[0]
        inputs = [hidden]
        for block in model.transformer.h[start:]:
            hidden = block(hidden)
            inputs.append(hidden)
        if recorded is not None:
            recorded.append(inputs)
        logits = model.lm_head(model.transformer.ln_f(hidden))
        nll = F.cross_entropy(logits.flatten(0, 1).float(), targets.repeat(repeats, 1).flatten(),
                              reduction="none")
        return nll.view(repeats, -1).sum(dim=1).double().numpy()


def _analog_layer_factory():
    """AnalogLinear.from_linear with one scratch Workspace for all layers (they run in turn)."""
    from simulator.analog.layer import AnalogLinear
    from simulator.analog.periphery import Workspace
    workspace = Workspace()
    return lambda linear, hw, seeds, name: AnalogLinear.from_linear(linear, hw, seeds, name, workspace)


@contextlib.contextmanager
def _swapped(model: torch.nn.Module, layers: dict[str, torch.nn.Module]):
    """`model` with the modules at the dotted paths in `layers` replaced, restored on exit."""
    originals = {name: model.get_submodule(name) for name in layers}
    try:
        for name, layer in layers.items():
            model.set_submodule(name, layer)
        yield model
    finally:
        for name, original in originals.items():
            model.set_submodule(name, original)


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


def make_probe(loaded_model, hw, seeds: Sequence[int], max_tokens: int | None = None,
               batch_seeds: int | None = None) -> Probe:
    """The fast suffix probe for GPT-2 (on the held-out LM text), full evaluations otherwise.

    `batch_seeds`: the seed count the eval batches are sized for (default len(seeds)); a
    part of a profile split over workers sizes them for the whole profile, so each of its
    seeds sees the same batches as in one process."""
    if loaded_model.family != "gpt2":
        return EvaluateProbe(loaded_model, hw, seeds)
    from simulator.accuracy.lm import TOKENS_PER_FORWARD, lm_eval_set
    eval_set = lm_eval_set(loaded_model, max_tokens=max_tokens)
    window = eval_set.inputs.shape[1]
    sized_for = batch_seeds or len(seeds)
    return LmSuffixProbe(loaded_model.model, hw, seeds, torch.from_numpy(eval_set.inputs),
                         torch.from_numpy(eval_set.targets),
                         windows_per_batch=max(1, TOKENS_PER_FORWARD // (sized_for * window)))


def model_projections(loaded_model) -> tuple[str, ...]:
    """The projections a probe of this model measures (make_probe's), without building it."""
    if loaded_model.family == "gpt2":
        return tuple(loaded_model.model.projection_names())
    return tuple(name for name, module in loaded_model.model.named_modules() if isinstance(module, torch.nn.Linear))


@dataclass(frozen=True)
class ProfilePart:
    """One worker's share of a profile: every run of `profile_sets(projections)`, on some seeds.

    A chip realisation depends only on (seed, projection name), so the parts' per-seed
    values, side by side, are the profile of all the seeds (tests/test_profile.py)."""

    model: str
    hw: object  # HwConfig
    seeds: tuple[int, ...]
    batch_seeds: int  # seeds of the whole profile (see make_probe)
    max_tokens: int | None
    projections: tuple[str, ...]
    times_s: tuple[float, ...]
    torch_threads: int | None = None  # torch and numba threads; None: leave their settings alone


def split_seeds(seeds: Sequence[int], parts: int) -> list[tuple[int, ...]]:
    """Contiguous, near-equal, non-empty runs of the seeds (at most len(seeds) of them)."""
    seeds = tuple(seeds)
    parts = max(1, min(parts, len(seeds)))
    bounds = np.linspace(0, len(seeds), parts + 1).round().astype(int)
    return [seeds[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def seed_groups(seeds: Sequence[int], processes: int, at_once: int) -> list[tuple[int, ...]]:
    """The seeds in parts of at most `at_once` each, a multiple of `processes` parts where
    there are enough seeds (each process then measures the same number of parts)."""
    rounds = -(-len(seeds) // (max(1, processes) * max(1, at_once)))
    return split_seeds(seeds, max(1, processes) * rounds)


def measure_part(part: ProfilePart, progress: Callable[[int], None] | None = None,
                 loaded_model=None) -> tuple[str, float, list[np.ndarray]]:
    """(metric, FP value, measure_sets of the part's runs) in this process; the model is
    loaded here unless given, so a Dask worker needs only the part."""
    if part.torch_threads:  # a worker's share of the cores, for torch and the numba kernels alike
        import numba
        torch.set_num_threads(part.torch_threads)
        numba.set_num_threads(min(part.torch_threads, numba.config.NUMBA_NUM_THREADS))
    if loaded_model is None:
        from workloads.registry import load_model
        loaded_model = load_model(part.model)
    probe = make_probe(loaded_model, part.hw, list(part.seeds), part.max_tokens, part.batch_seeds)
    probe.projections = part.projections
    measured = measure_sets(probe, profile_sets(part.projections), part.times_s, progress)
    return probe.metric, float(probe.fp), measured


def merge_parts(results: Sequence[tuple[str, float, list[np.ndarray]]]) -> tuple[str, float, list[np.ndarray]]:
    """The parts' results (in seed order) as one: per-set arrays joined along the seed axis."""
    metric, fp, _ = results[0]
    merged = [np.concatenate(per_set, axis=1) for per_set in zip(*(measured for _, _, measured in results))]
    return metric, fp, merged


def measure_parts_on_dask(client, parts: Sequence[ProfilePart],
                          progress: Callable[[int], None] | None = None) -> tuple[str, float, list[np.ndarray]]:
    """measure_part of every part on a Dask cluster, merged; `progress(n)` as runs finish on
    any worker (a distributed Queue carries one tick per run)."""
    import time
    import uuid

    from distributed import Queue

    ticks = Queue(f"profile-progress-{uuid.uuid4().hex}", client=client)
    futures = [client.submit(_measure_part_ticking, part, ticks.name, pure=False) for part in parts]
    while not all(future.done() for future in futures):
        time.sleep(0.5)
        _drain(ticks, progress)
        for future in futures:
            if future.status == "error":
                future.result()  # raises the worker's error here
    _drain(ticks, progress)
    return merge_parts([future.result() for future in futures])


def _drain(ticks, progress) -> None:
    waiting = ticks.qsize()
    if waiting:
        finished = sum(ticks.get(batch=waiting))
        if progress:
            progress(finished)


def _measure_part_ticking(part: ProfilePart, queue_name: str):
    from distributed import Queue
    ticks = Queue(queue_name)
    return measure_part(part, progress=lambda n: ticks.put(n))
