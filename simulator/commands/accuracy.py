"""`aimcsim accuracy`: how a model's accuracy holds up on analog tiles over drift time.

Maps the chosen projections to analog (per-tile physics only; tile capacity does not
matter for accuracy), evaluates several chip realisations at each drift time, and
prints the metric's mean +- std and its change against the FP model.
"""
from __future__ import annotations

import os
import re
import sys

from simulator.atomic import atomic_output
from simulator.commands.common import (
    add_accuracy_args, add_hw_args, load_hw_arg, write_json_atomic,
)
from simulator.errors import UserError
from simulator.mapping.mapping import ANALOG

DEFAULT_TIMES = "0,1h,1d,1y"
SECONDS_PER_UNIT = {
    "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0,
    "mo": 30 * 86400.0, "month": 30 * 86400.0, "y": 365 * 86400.0,
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$")


def add_parser(sub) -> None:
    p = sub.add_parser("accuracy", help="accuracy over drift time and chip realisations",
                       description=__doc__.split("\n")[0])
    add_hw_args(p, default="hermes64")
    add_accuracy_args(p, times=DEFAULT_TIMES, times_help="drift times after programming, comma separated",
                      seeds=5)
    p.add_argument("--mapping", default="all-analog",
                   help="all-analog | all-digital | mapping YAML (default all-analog)")
    p.add_argument("--metric", default=None,
                   help="GPT-2: perplexity (default), kl, top1; BERT family: cosine")
    p.add_argument("--json", metavar="FILE", help="write the result as JSON")
    p.add_argument("--h5", metavar="FILE", help="write the result as HDF5")
    p.set_defaults(func=run)


def parse_duration_s(text: str) -> float:
    """'0', '90', '1s', '1h', '1d', '1w', '1mo', '1month', '1y', '10y' -> seconds."""
    match = _DURATION.match(text.lower())
    if not match or match.group(2) not in ("", *SECONDS_PER_UNIT):
        raise UserError(f"--t: cannot read time {text!r}; use plain seconds or a number with "
                        f"one of the units {', '.join(SECONDS_PER_UNIT)} (e.g. 1h, 1d, 1mo, 10y)")
    number, unit = match.groups()
    return float(number) * SECONDS_PER_UNIT.get(unit, 1.0)


def parse_times(text: str) -> list[float]:
    """A comma-separated list of durations, in seconds, in the order given."""
    parts = [part for part in text.split(",") if part.strip()]
    if not parts:
        raise UserError("--t: expected at least one time, e.g. 0,1h,1d,1y")
    return [parse_duration_s(part) for part in parts]


def mapping_targets(strategy: str, projections: list[str]) -> dict[str, str]:
    """projection -> 'analog' | 'digital' for a named strategy or a mapping file."""
    if strategy == "all-analog":
        return {name: ANALOG for name in projections}
    if strategy == "all-digital":
        return {}
    if os.path.isfile(strategy):
        from simulator.mapping.io import load_mapping_targets
        return load_mapping_targets(strategy, projections)
    raise UserError(f"--mapping: {strategy!r} is neither all-analog, all-digital nor an "
                    "existing mapping YAML file")


def format_time(t_s: float) -> str:
    """The largest unit that divides t_s exactly (`1y`, `30d`, `90s`)."""
    for unit in ("y", "d", "h", "min", "s"):
        count = t_s / SECONDS_PER_UNIT[unit]
        if count >= 1 and count == int(count):
            return f"{int(count)}{unit}"
    return f"{t_s:g}s"


def format_table(result) -> str:
    """Time vs metric mean +- std and the change against FP, one row per drift time."""
    lines = [f"model {result.model} on {result.hw}: {len(result.analog_projections)} analog "
             f"projection(s), {len(result.seeds)} chip realisation(s)"
             + (f", {result.eval_tokens} held-out tokens" if result.eval_tokens else ""),
             f"FP {result.metric}: {result.fp:.4f}",
             f"{'time':>8}  {result.metric + ' mean':>16}  {'std':>10}  {'delta vs FP':>12}"]
    for entry in result.results:
        lines.append(f"{format_time(entry['t_s']):>8}  {entry['mean']:>16.4f}  "
                     f"{entry['std']:>10.4f}  {entry['delta']:>+12.4f}")
    return "\n".join(lines)


def write_h5_atomic(path: str, payload: dict) -> None:
    """Result as HDF5: scalars as attributes, one group per drift time with its values."""
    import h5py
    import numpy as np
    with atomic_output(path, ".h5") as tmp, h5py.File(tmp, "w") as f:
        for key in ("metric", "fp", "model", "hw", "eval_tokens"):
            if payload[key] is not None:
                f.attrs[key] = payload[key]
        f.create_dataset("seeds", data=np.asarray(payload["seeds"], dtype=np.int64))
        f.create_dataset("analog_projections",
                         data=np.asarray(payload["analog_projections"], dtype=object),
                         dtype=h5py.string_dtype())
        f.create_dataset("t_s", data=[entry["t_s"] for entry in payload["results"]])
        for field in ("mean", "std", "delta"):
            f.create_dataset(field, data=[entry[field] for entry in payload["results"]])
        f.create_dataset("values", data=np.asarray([entry["values"] for entry in payload["results"]]))


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
    times_s = parse_times(args.t)
    hw = load_hw_arg(args)
    from simulator.accuracy.evaluate import evaluate_accuracy, projection_names
    from workloads.registry import load_model
    loaded_model = load_model(args.model)
    targets = mapping_targets(args.mapping, projection_names(loaded_model.model))
    with TotalBar("accuracy", "forward") as bar:
        result = evaluate_accuracy(loaded_model, hw, targets, times_s, args.seeds,
                                   metric=args.metric, max_tokens=args.max_tokens, progress=bar.update)
    print(format_table(result))
    payload = result.to_dict()
    if args.json:
        write_json_atomic(args.json, payload)
        print(f"wrote {args.json} (json)")
    if args.h5:
        write_h5_atomic(args.h5, payload)
        print(f"wrote {args.h5} (h5)")
    return 0
