"""Accuracy of a model whose chosen projections run on analog tiles, over drift times and chips.

`evaluate_accuracy` converts the analog projections once (one chip realisation per
seed, all batched in the same forward), measures the FP reference once, then steps
through the drift times. Accuracy ignores tile capacity: only per-tile physics matter,
so targets are a plain projection -> 'analog' | 'digital' dict or a Mapping.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from simulator.accuracy.lm import LM_METRICS, evaluate_lm, forward_count, lm_eval_set
from simulator.accuracy.metrics import embedding_cosine, mean_std
from simulator.errors import UserError
from simulator.mapping.mapping import ANALOG, DIGITAL, Mapping

ENCODER_METRICS = ("cosine",)
METRICS_BY_FAMILY = {"gpt2": LM_METRICS, "bert": ENCODER_METRICS, "mobilebert": ENCODER_METRICS}


@dataclass(frozen=True)
class AccuracyResult:
    """Metric at each drift time over chip realisations; `fp` is the all-digital reference.

    Each entry of `results` is {t_s, mean, std, delta, values}: `values` has one number per
    seed, `std` is the sample spread over seeds (0 for one seed), `delta` = mean - fp.
    """

    metric: str
    fp: float
    results: tuple[dict, ...]
    model: str
    hw: str
    analog_projections: tuple[str, ...]
    seeds: tuple[int, ...]
    eval_tokens: int | None  # LMs: held-out tokens scored; None for encoders

    def to_dict(self) -> dict:
        payload = asdict(self)
        payload["results"] = [dict(entry) for entry in self.results]
        payload["analog_projections"] = list(self.analog_projections)
        payload["seeds"] = list(self.seeds)
        return payload


def evaluate_accuracy(loaded_model, hw, targets: dict[str, str] | Mapping, times_s: list[float],
                      seeds: list[int] | int, *, max_batches: int | None = None,
                      metric: str | None = None, max_tokens: int | None = None,
                      adapters=None, seeds_at_once: int | None = None,
                      progress: Callable[[int, int], None] | None = None) -> AccuracyResult:
    """Metric of `loaded_model` with `targets` analog on `hw`, at each time in `times_s`.

    `seeds`: chip realisations (an int n means seeds 0..n-1). `metric`: for GPT-2
    perplexity (default), kl or top1; for encoders cosine. `max_tokens` / `max_batches`
    cut the LM eval to a prefix of the held-out text for quick looks. `adapters`: a
    `simulator.adapt.files.AdapterFile`; AHWA weights are programmed instead of the FP
    ones, LoRA adapters run digitally beside their analog projections. The FP reference
    is always the original model. `seeds_at_once`: evaluate the seeds in groups of at most
    this many, one after another (what fits in memory; the same numbers as all at once).
    `progress(done, total)` is called as the analog forwards finish (time x eval batch).
    """
    family = loaded_model.family
    metric = _check_metric(family, metric)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise UserError("seeds: expected at least one seed")
    analog_names = analog_projection_names(loaded_model.model, targets)
    eval_set = lm_eval_set(loaded_model, max_tokens=max_tokens) if family == "gpt2" else None
    fp_model = loaded_model.model.eval()
    if adapters is not None:
        adapters.check_model(loaded_model)  # a wrong file fails before any progress is shown
    groups = [seed_list[i:i + seeds_at_once] for i in range(0, len(seed_list), seeds_at_once)] \
        if seeds_at_once else [seed_list]
    forwards = (forward_count(eval_set, len(seed_list), len(times_s), max_batches) if eval_set is not None
                else len(times_s))
    if progress and analog_names:  # shown before programming, which takes a while too
        progress(0, forwards * len(groups))
    programmed = fp_model
    if adapters is not None:
        programmed = adapters.programmed_model(fp_model)
    fp_value, per_group, eval_tokens = None, [], None
    for index, group in enumerate(groups):  # each group's realisations are freed before the next is programmed
        analog_model, set_time = _analog_copy(programmed, analog_names, hw, group)
        if adapters is not None and analog_model is not None:
            adapters.attach(analog_model, analog_names, group)
        done = index * forwards
        group_progress = progress and (lambda step, _total, done=done: progress(done + step, forwards * len(groups)))
        if eval_set is not None:
            # batches sized for every seed: a seed sees the same forwards in any group
            scores = evaluate_lm(fp_model, analog_model, set_time, eval_set, list(times_s), len(group), metric,
                                 max_batches=max_batches, progress=group_progress,
                                 batch_replicas=len(seed_list), fp_value=fp_value)
            fp_value, values, eval_tokens = scores.fp, scores.values, scores.tokens
        else:
            fp_value, values = _evaluate_encoder(loaded_model, analog_model, set_time, list(times_s),
                                                 len(group), group_progress)
        per_group.append(values)
        del analog_model
    values = np.concatenate(per_group, axis=1)
    return AccuracyResult(
        metric=metric, fp=float(fp_value),
        results=tuple(_summary(t_s, row, fp_value) for t_s, row in zip(times_s, values)),
        model=loaded_model.name, hw=hw.name, analog_projections=tuple(analog_names), seeds=tuple(seed_list),
        eval_tokens=eval_tokens)


def _check_metric(family: str, metric: str | None) -> str:
    if family not in METRICS_BY_FAMILY:
        raise UserError(f"model family {family!r} has no accuracy evaluation; "
                        f"expected one of {sorted(METRICS_BY_FAMILY)}")
    valid = METRICS_BY_FAMILY[family]
    if metric is None:
        return valid[0]
    if metric not in valid:
        raise UserError(f"metric: {metric!r} is not available for {family} models; "
                        f"expected one of {', '.join(valid)}")
    return metric


def projection_names(model: torch.nn.Module) -> list[str]:
    """Every nn.Linear of the model, in model order: the projections a mapping can place."""
    return [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)]


def analog_projection_names(model: torch.nn.Module, targets: dict[str, str] | Mapping) -> list[str]:
    """Projections to run analog, in model order; unknown names or targets are UserErrors."""
    target_by_name = targets.targets() if isinstance(targets, Mapping) else dict(targets)
    linear_names = projection_names(model)
    unknown = sorted(set(target_by_name) - set(linear_names))
    if unknown:
        raise UserError(f"mapping: projection {unknown[0]!r} is not in the model "
                        f"(it has {len(linear_names)}, e.g. {linear_names[0]!r})")
    for name, target in target_by_name.items():
        if target not in (ANALOG, DIGITAL):
            raise UserError(f"mapping: {name}: expected '{ANALOG}' or '{DIGITAL}', got {target!r}")
    return [name for name in linear_names if target_by_name.get(name) == ANALOG]


def _analog_copy(fp_model, analog_names, hw, seeds):
    """(analog copy, set_time) or (None, None) when nothing runs analog."""
    if not analog_names:
        return None, None
    # Imported here so all-digital evaluation never needs the analog physics stack.
    from simulator.analog.layer import convert_to_analog, set_time
    return convert_to_analog(fp_model, analog_names, hw, seeds).eval(), set_time


@torch.no_grad()
def _evaluate_encoder(loaded_model, analog_model, set_time, times_s, replicas, progress=None):
    """Embedding cosine to FP on the family's eval batch, per (time, realisation).

    Padding positions (attention_mask 0) are left out: their hidden states mean nothing.
    """
    from workloads.bert.data import eval_batch
    batch = eval_batch(loaded_model)
    fp_output = loaded_model.model(**batch)
    if analog_model is None:
        return 1.0, np.ones((len(times_s), replicas))
    keep = batch.get("attention_mask")
    keep = torch.ones(fp_output.shape[:-1], dtype=torch.bool) if keep is None else keep.bool()
    repeated = {key: value.repeat(replicas, *([1] * (value.dim() - 1)))
                for key, value in batch.items()}
    values = np.zeros((len(times_s), replicas))
    for time_index, t_s in enumerate(times_s):
        set_time(analog_model, t_s)
        outputs = analog_model(**repeated).view(replicas, *fp_output.shape)
        values[time_index] = [embedding_cosine(fp_output[keep], outputs[k][keep])
                              for k in range(replicas)]
        if progress:
            progress(time_index + 1, len(times_s))
    return 1.0, values


def _summary(t_s: float, values: np.ndarray, fp_value: float) -> dict:
    mean, std = mean_std(values)
    return {"t_s": float(t_s), "mean": mean, "std": std, "delta": mean - float(fp_value),
            "values": [float(v) for v in values]}
