"""aimcsim profile: rank the projections by how much analog execution alone hurts the metric."""
from __future__ import annotations

import os
import sys

from tqdm import tqdm

from simulator.commands.accuracy import format_time, parse_times
from simulator.commands.common import add_accuracy_args, add_hw_args, load_hw_arg, write_json_atomic
from simulator.errors import UserError

PLOT_FORMATS = (".png", ".svg", ".pdf")
# Held-out tokens per run of profile and search. Measured (benchmarks/profile_tokens.py,
# docs/analysis.md): the top of the ranking holds at 1024 (top-1, 4 of the top 5) but the
# full ranking does not (Spearman 0.49 against 8192 tokens; 0.89 at 4096).
PROFILE_TOKENS = 1024


def add_parser(sub) -> None:
    p = sub.add_parser("profile", help="per-projection sensitivity to analog execution",
                       description=__doc__.split("\n")[0])
    add_hw_args(p, default="hermes64")
    add_accuracy_args(p, times="0,1y", seeds=10, max_tokens=PROFILE_TOKENS,
                      times_help="drift times, comma separated; the last is the horizon the ranking uses")
    p.add_argument("--json", metavar="FILE", help="write the profile as JSON")
    p.add_argument("--h5", metavar="FILE", help="write the per-seed values as HDF5")
    p.add_argument("--plot", metavar="FILE", help="bar chart (.png, .svg or .pdf)")
    p.set_defaults(func=run)


def check_output(path: str | None, flag: str, suffixes: tuple[str, ...]) -> None:
    """Fail before minutes of work, not after, on an output path that cannot be written."""
    if path is None:
        return
    if not path.lower().endswith(suffixes):
        raise UserError(f"{flag} {path}: expected a file ending in {', '.join(suffixes)}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UserError(f"{flag} {path}: folder {folder} does not exist")


def format_profile(summary: dict, limit: int = 60) -> str:
    """Ranked table: analog-alone and digital-alone degradation at the horizon."""
    horizon = format_time(summary["times_s"][-1])
    all_analog = summary["all_analog"][-1]
    lines = [f"FP {summary['metric']}: {summary['fp']:.4f}; all analog at {horizon}: "
             f"{all_analog['delta']:+.4f} +- {all_analog['std']:.4f} ({summary['seeds']} seeds)",
             f"{'rank':>4}  {'projection':<32} {'analog alone':>13} {'std':>9} {'digital alone':>14}"]
    for rank, entry in enumerate(summary["projections"][:limit], start=1):
        lines.append(f"{rank:>4}  {entry['name']:<32} {entry['analog_alone_delta']:>+13.4f} "
                     f"{entry['std']:>9.4f} {entry['digital_alone_delta']:>+14.4f}")
    lines.append("per type: " + ", ".join(f"{g['type']} {g['analog_alone_delta_sum']:+.3f}"
                                          for g in summary["per_type"]))
    return "\n".join(lines)


def run(args) -> int:
    times_s = parse_times(args.t)
    check_output(args.json, "--json", (".json",))
    check_output(args.h5, "--h5", (".h5", ".hdf5"))
    check_output(args.plot, "--plot", PLOT_FORMATS)
    hw = load_hw_arg(args)
    from simulator.analysis.profile import make_probe, measure_sets, profile_result, profile_sets, write_profile_h5
    from workloads.registry import load_model
    probe = make_probe(load_model(args.model), hw, list(range(args.seeds)), args.max_tokens)
    sets = profile_sets(probe.projections)
    with tqdm(total=len(sets) * len(times_s), unit="run", desc="profile", file=sys.stderr,
              dynamic_ncols=True) as bar:
        measured = measure_sets(probe, sets, times_s, progress=bar.update)
    result = profile_result(probe, times_s, measured)
    summary = result.to_dict() | {"model": args.model, "hw": hw.name}
    print(format_profile(summary))
    if args.json:
        write_json_atomic(args.json, summary)
    if args.h5:
        write_profile_h5(result, args.h5)
    if args.plot:
        from simulator.analysis.plots import plot_profile
        plot_profile(summary, args.plot)
    return 0
