"""`aimcsim sweep`: time a workload on every point of a grid of config overrides (on Dask),
resumable, into an HDF5 file plus a PNG plot of latency, energy (and accuracy) per key.

    aimcsim sweep --hw analog_fabric --set analog.tiles=64,128,256 --set analog.adc_bits=6,8 \\
        --workload gpt2 --phase prefill --tokens 128 --out sweep.h5

Re-running the same command after an interruption skips the points already in the file.
The plot is written beside --out with the extension .png (sweep.h5 -> sweep.png).
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os

from tqdm import tqdm

from simulator.analysis.sweep import (SweepSpec, plot_sweep, read_points, run_in_process,
                                      run_on_dask, run_sweep)
from simulator.atomic import HDF5, PLOT
from simulator.commands.accuracy import parse_times
from simulator.commands.common import (
    MAX_SEEDS, MAX_TOKENS, add_workload_args, bounded_int, check_max_tokens, check_outputs, check_timing_args,
    graph_kwargs, load_model_checked, presets_help,
)
from simulator.errors import UserError
from simulator.hw.loader import load_hw, parse_overrides
from simulator.report.table import format_energy_pj, format_time_ns
from workloads.registry import model_config

MAX_WORKERS = 256


def add_parser(sub) -> None:
    parser = sub.add_parser("sweep", help="sweep config keys over a grid (Dask, resumable, HDF5 + PNG)",
                            description=__doc__.split("\n\n")[0].replace("`", ""),
                            epilog="Example: " + __doc__.split("\n\n")[1].strip(),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hw", required=True, metavar="CONFIG",
                        help=f"base hardware config: a preset name ({presets_help()}) or a YAML path")
    parser.add_argument("--set", dest="axes", action="append", default=[], metavar="KEY=V1,V2,...",
                        help="a swept key and its values, e.g. analog.tiles=64,128 (repeatable; "
                             "one value fixes the key for every point)")
    add_workload_args(parser, "gpt2")
    parser.add_argument("--mapping", default="all-analog",
                        help="all-analog, all-digital or a mapping YAML (default all-analog)")
    parser.add_argument("--engine", choices=("fast", "simpy"), default="fast",
                        help="timing engine (default fast; both give the same schedule)")
    parser.add_argument("--accuracy", action="store_true", help="also evaluate accuracy per point")
    parser.add_argument("--seeds", type=bounded_int(MAX_SEEDS), default=3, metavar="N",
                        help="chip realisations for --accuracy (default 3)")
    parser.add_argument("--t", dest="times", default="1y",
                        help="drift times for --accuracy, e.g. 0,1h,1d,1y (units s min h d w mo y; default 1y)")
    parser.add_argument("--model", default=None, metavar="MODEL",
                        help="--accuracy: the trained model to score, with the workload's projection names "
                             "(e.g. gpt2-pydoc for the gpt2 shapes; default: the workload itself)")
    parser.add_argument("--max-tokens", type=bounded_int(MAX_TOKENS), default=None, metavar="N",
                        help="--accuracy on LMs: score only the first N held-out tokens (default: all)")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="HDF5 file (.h5); re-running resumes it; the plot goes beside it as .png")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler address (default: a local cluster)")
    parser.add_argument("--workers", type=bounded_int(MAX_WORKERS), default=2, metavar="N",
                        help="local cluster worker processes (default 2)")
    parser.add_argument("--local", action="store_true", help="evaluate in this process, no Dask (debugging)")
    parser.set_defaults(func=run)


def run(args) -> int:
    spec = SweepSpec(hw=args.hw, axes=parse_axes(args.axes), workload=args.workload, phase=args.phase,
                     mapping=args.mapping, engine=args.engine, graph_kw=graph_kwargs(args),
                     accuracy_seeds=args.seeds if args.accuracy else 0,
                     accuracy_times_s=tuple(parse_times(args.times)) if args.accuracy else (),
                     accuracy_max_tokens=args.max_tokens if args.accuracy else None,
                     accuracy_model=args.model if args.accuracy else None)
    model_config(spec.workload)  # an unknown workload is one error, not a failure per point
    if spec.accuracy_model is not None:
        try:
            model_config(spec.accuracy_model)
        except UserError as exc:
            raise UserError(f"--model: {exc}") from None
    png = os.path.splitext(args.out)[0] + ".png"
    check_outputs(("--out", args.out, HDF5), ("the plot beside --out", png, PLOT))
    _check_before_the_points(args, spec)
    progress = _Progress()
    try:
        if args.local:
            counts = run_sweep(spec, args.out, run_in_process, on_plan=progress.start, on_point=progress.point)
        else:
            with dask_client(args.scheduler, args.workers) as client:
                counts = run_sweep(spec, args.out, run_on_dask(client), on_plan=progress.start,
                                   on_point=progress.point)
    finally:  # the bar ends before any "interrupted" line
        progress.close()
    plot_sweep(read_points(args.out), spec.axes, png)
    print(f"{counts.points} points: {counts.skipped} already done, {counts.evaluated} evaluated, "
          f"{counts.failed} failed; results in {args.out}, plot in {png}")
    return 0


def _check_before_the_points(args, spec: SweepSpec) -> None:
    """What would fail every point fails once, now: the context window (--tokens,
    --new-tokens, --max-tokens), the memory the points running at once need, the model.
    Sizes are estimated on the grid's first point."""
    for flag, value in (("--max-tokens", args.max_tokens), ("--model", args.model)):
        if value is not None and not args.accuracy:
            raise UserError(f"{flag}: only used with --accuracy; add --accuracy or leave {flag} out")
    hw = load_hw(spec.hw, {key: values[0] for key, values in spec.axes})
    parallel = 1 if args.local else args.workers
    check_timing_args(args, hw, spec.workload, spec.mapping, parallel=parallel, one_of_many=True)
    if not args.accuracy:
        return
    from simulator.commands.memory import check_seeds_memory
    from simulator.mapping.resolve import analog_names, resolve_targets
    model = spec.accuracy_model or spec.workload
    loaded = load_model_checked(model, "--model" if spec.accuracy_model else "--workload")
    check_max_tokens(args.max_tokens, loaded)
    try:
        analog = analog_names(resolve_targets(model, hw, spec.mapping))
    except UserError:  # the mapping does not fit this point; the points say so
        return
    check_seeds_memory(loaded, analog, args.seeds, parallel=parallel)


def parse_axes(items: list[str]) -> tuple[tuple[str, tuple], ...]:
    """`["analog.tiles=64,128"]` -> `(("analog.tiles", (64, 128)),)` with YAML-typed values."""
    if not items:
        raise UserError("--set: give at least one swept key, e.g. --set analog.tiles=64,128")
    axes = {}
    for item in items:
        key, sep, text = item.partition("=")
        key, texts = key.strip(), text.split(",")
        if not sep or not key:
            raise UserError(f"--set {item}: expected KEY=V1,V2,..., e.g. analog.tiles=64,128")
        if key in axes:
            raise UserError(f"--set {key}: given twice; list all its values in one --set")
        if len(set(texts)) != len(texts):
            raise UserError(f"--set {item}: a value appears twice")
        axes[key] = tuple(parse_overrides([f"{key}={value}"])[key] for value in texts)
    return tuple(axes.items())


class _Progress:
    """A tqdm bar over points plus one line per finished point, so a long sweep shows its results."""

    def __init__(self):
        self._bar = None

    def start(self, total: int, skipped: int) -> None:
        if skipped:
            tqdm.write(f"resuming: {skipped} of {total} points already done")
        self._bar = tqdm(total=total, initial=skipped, unit="point", dynamic_ncols=True)

    def point(self, overrides: dict, result: dict) -> None:
        label = " ".join(f"{key}={value}" for key, value in overrides.items())
        if result["status"] == "ok":
            outcome = (f"latency {format_time_ns(result['latency_ns'])}, "
                       f"energy {format_energy_pj(result['energy_pj'])}")
            if "accuracy" in result:
                outcome += f", {result['accuracy']['metric']} {result['accuracy']['mean'][-1]:.4g}"
        else:
            outcome = f"failed: {result['error']}"
        tqdm.write(f"{label}: {outcome}")
        self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


@contextlib.contextmanager
def dask_client(address: str | None, workers: int):
    """A client of the given scheduler, or of a local cluster of worker processes closed on exit."""
    from distributed import Client, LocalCluster

    if address:
        try:
            client = Client(address, timeout="10s")
        except OSError as exc:
            raise UserError(f"--scheduler {address}: cannot connect ({exc})") from None
        with client:
            yield client
        return
    # Only CRITICAL logs: a point's failure comes back as its record, and on Ctrl-C the workers
    # and nannies, interrupted with the parent, log their cancelled shutdown as ERROR tracebacks.
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
        try:
            yield client
        except KeyboardInterrupt:
            logging.getLogger("distributed").setLevel(logging.CRITICAL + 1)
            raise
