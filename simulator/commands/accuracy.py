"""`aimcsim accuracy`: how a model's accuracy holds up on analog tiles over drift time.

Maps the projections the mapping strategy puts on analog tiles (the same capacity rule
as `aimcsim run`: with all-analog, what the tiles hold), evaluates several chip
realisations at each drift time, and prints the metric's mean +- std and its change
against the FP model, naming the analog and the digital projections.
"""
from __future__ import annotations

import re
import sys

from simulator.atomic import HDF5, JSON, atomic_output
from simulator.commands.common import (
    add_accuracy_args, add_hw_args, check_max_tokens, check_outputs, load_hw_arg, load_model_checked,
    write_json_atomic, wrote,
)
from simulator.errors import UserError

DEFAULT_TIMES = "0,1h,1d,1y"
SECONDS_PER_UNIT = {
    "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0,
    "mo": 30 * 86400.0, "month": 30 * 86400.0, "y": 365 * 86400.0,
}
MAX_TIME_S = 1000 * SECONDS_PER_UNIT["y"]  # drift laws are fitted to hours..years of data
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$")


def add_parser(sub) -> None:
    p = sub.add_parser("accuracy", help="accuracy over drift time and chip realisations",
                       description=__doc__.split("\n")[0])
    add_hw_args(p, default="hermes64")
    add_accuracy_args(p, times=DEFAULT_TIMES, times_help="drift times after programming, comma separated",
                      seeds=5)
    p.add_argument("--mapping", default="all-analog", metavar="MAPPING",
                   help="all-analog (every projection the tiles hold, as in `aimcsim run`) | "
                        "all-digital | mapping YAML (default all-analog)")
    p.add_argument("--metric", default=None,
                   help="GPT-2: perplexity (default), kl (nats/token), top1 (fraction agreeing "
                        "with FP); BERT family: cosine (default)")
    p.add_argument("--json", metavar="FILE", help="write the result as JSON (.json; - for stdout)")
    p.add_argument("--h5", metavar="FILE", help="write the result as HDF5 (.h5; see docs/outputs.md)")
    p.add_argument("--adapters", metavar="FILE", default=None,
                   help="LoRA adapters or AHWA weights from `aimcsim adapt` (.safetensors)")
    p.set_defaults(func=run)


def parse_duration_s(text: str, flag: str = "--t") -> float:
    """'0', '90', '1s', '1h', '1d', '1w', '1mo', '1month', '1y', '10y' -> seconds."""
    match = _DURATION.match(text.lower())
    if not match or match.group(2) not in ("", *SECONDS_PER_UNIT):
        raise UserError(f"{flag}: cannot read time {text!r}; use plain seconds or a number with "
                        f"one of the units {', '.join(SECONDS_PER_UNIT)} (e.g. 1h, 1d, 1mo, 10y)")
    number, unit = match.groups()
    seconds = float(number) * SECONDS_PER_UNIT.get(unit, 1.0)
    if seconds > MAX_TIME_S:
        raise UserError(f"{flag}: {text!r} is beyond the drift models' range; expected at most "
                        f"{MAX_TIME_S / SECONDS_PER_UNIT['y']:g}y")
    return seconds


def parse_times(text: str) -> list[float]:
    """A comma-separated list of durations, in seconds, in the order given."""
    parts = [part for part in text.split(",") if part.strip()]
    if not parts:
        raise UserError("--t: expected at least one time, e.g. 0,1h,1d,1y")
    return [parse_duration_s(part) for part in parts]


def mapping_targets(strategy: str, workload: str, hw) -> dict[str, str]:
    """projection -> 'analog' | 'digital' under the one capacity rule (mapping/resolve.py)."""
    from simulator.mapping.resolve import resolve_targets
    return resolve_targets(workload, hw, strategy)


def compact_names(names: list[str]) -> str:
    """`h.{0-11}.attn.c_attn, lm_head`: names that differ only in a layer index, merged."""
    if not names:
        return "none"
    groups: dict[str, list[int]] = {}
    for name in names:
        match = re.search(r"\.(\d+)\.", name)
        pattern, index = (name, -1) if match is None else \
            (name[:match.start()] + ".{}." + name[match.end():], int(match.group(1)))
        groups.setdefault(pattern, []).append(index)
    parts = []
    for pattern, indices in groups.items():
        if indices == [-1]:
            parts.append(pattern)
        else:
            parts.append(pattern.replace("{}", "{" + _ranges(sorted(indices)) + "}"))
    return ", ".join(part.removeprefix("transformer.") for part in parts)


def _ranges(values: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5'."""
    runs: list[list[int]] = []
    for value in values:
        if runs and value == runs[-1][-1] + 1:
            runs[-1].append(value)
        else:
            runs.append([value])
    return ",".join(f"{run[0]}" if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)


def format_time(t_s: float) -> str:
    """The largest unit that divides t_s exactly (`1y`, `30d`, `90s`)."""
    for unit in ("y", "d", "h", "min", "s"):
        count = t_s / SECONDS_PER_UNIT[unit]
        if count >= 1 and count == int(count):
            return f"{int(count)}{unit}"
    return f"{t_s:g}s"


def format_table(result, digital: list[str] | None = None) -> str:
    """Time vs metric mean +- std and the change against FP, one row per drift time."""
    seeds = len(result.seeds)
    lines = [f"model {result.model} on {result.hw}: {len(result.analog_projections)} analog "
             f"projection(s), {seeds} chip realisation{'s' if seeds != 1 else ''}"
             + (f", {result.eval_tokens} held-out tokens" if result.eval_tokens else ""),
             f"analog: {compact_names(list(result.analog_projections))}"]
    if digital is not None:
        lines.append(f"digital: {compact_names(digital)}")
    lines += [f"FP {result.metric}: {result.fp:.4f}",
             f"{'time':>8}  {result.metric + ' mean':>16}  {'std':>10}  {'delta vs FP':>12}"]
    for entry in result.results:
        lines.append(f"{format_time(entry['t_s']):>8}  {entry['mean']:>16.4f}  "
                     f"{entry['std']:>10.4f}  {entry['delta']:>+12.4f}")
    return "\n".join(lines)


def write_h5_atomic(path: str, payload: dict) -> None:
    """Result as HDF5: scalars as attributes, one group per drift time with its values."""
    import h5py
    import numpy as np

    from simulator.report.h5 import describe_file, label_axes
    with atomic_output(path, ".h5") as tmp, h5py.File(tmp, "w") as f:
        for key in ("metric", "fp", "model", "hw", "eval_tokens"):
            if payload[key] is not None:
                f.attrs[key] = payload[key]
        describe_file(f, "aimcsim accuracy result")
        f.create_dataset("seeds", data=np.asarray(payload["seeds"], dtype=np.int64))
        for key in ("analog_projections", "digital_projections"):
            f.create_dataset(key, data=np.asarray(payload.get(key, []), dtype=object),
                             dtype=h5py.string_dtype())
        f.create_dataset("t_s", data=[entry["t_s"] for entry in payload["results"]])
        for field in ("mean", "std", "delta"):
            f.create_dataset(field, data=[entry[field] for entry in payload["results"]])
        f.create_dataset("values", data=np.asarray([entry["values"] for entry in payload["results"]]))
        label_axes(f, {"seeds": ("seed",), "analog_projections": ("projection",),
                       "digital_projections": ("projection",), "t_s": ("time",),
                       "mean": ("time",), "std": ("time",), "delta": ("time",),
                       "values": ("time", "seed")},
                   units={"t_s": "s"})


def _check_metric_flag(metric: str | None, family: str) -> None:
    from simulator.accuracy.evaluate import METRICS_BY_FAMILY
    valid = METRICS_BY_FAMILY.get(family, ())
    if metric is not None and valid and metric not in valid:
        raise UserError(f"--metric: {metric!r} is not available for {family} models; "
                        f"expected one of {', '.join(valid)}")


class TotalBar:
    """A tqdm bar on stderr, opened at the first `update(done, total)`: the total of a
    long evaluation is only known once its inputs are prepared."""

    def __init__(self, desc: str, unit: str):
        self._desc, self._unit, self._bar = desc, unit, None

    def update(self, done: int, total: int) -> None:
        from tqdm import tqdm
        if self._bar is None:
            self._bar = tqdm(total=total, desc=self._desc, unit=self._unit, file=sys.stderr, dynamic_ncols=True)
        self._bar.update(done - self._bar.n)

    def __enter__(self) -> "TotalBar":
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()


def run(args) -> int:
    check_outputs(("--json", args.json, JSON), ("--h5", args.h5, HDF5))
    times_s = parse_times(args.t)
    hw = load_hw_arg(args)
    from simulator.accuracy.evaluate import evaluate_accuracy, projection_names
    from simulator.commands.memory import seeds_at_once
    from simulator.mapping.resolve import analog_names
    adapters = None
    if getattr(args, "adapters", None):
        from simulator.adapt.files import load_adapters
        adapters = load_adapters(args.adapters)
    loaded_model = load_model_checked(args.model)
    check_max_tokens(args.max_tokens, loaded_model)
    _check_metric_flag(args.metric, loaded_model.family)
    targets = mapping_targets(args.mapping, args.model, hw)
    at_once = seeds_at_once(loaded_model, analog_names(targets), args.seeds, 1)
    if at_once < args.seeds:
        print(f"memory: the {args.seeds} seeds are evaluated in groups of at most {at_once} so that their "
              "chip realisations fit", file=sys.stderr)
    with TotalBar("accuracy", "forward") as bar:
        result = evaluate_accuracy(loaded_model, hw, targets, times_s, args.seeds, metric=args.metric,
                                   max_tokens=args.max_tokens, adapters=adapters, progress=bar.update,
                                   seeds_at_once=at_once)
    analog = set(result.analog_projections)
    digital = [name for name in projection_names(loaded_model.model) if name not in analog]
    print(format_table(result, digital))
    payload = result.to_dict() | {"digital_projections": digital, "mapping": args.mapping}
    if args.json:
        write_json_atomic(args.json, payload)
        wrote(args.json, "json")
    if args.h5:
        write_h5_atomic(args.h5, payload)
        wrote(args.h5, "h5")
    return 0
