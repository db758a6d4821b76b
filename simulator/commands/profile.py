"""aimcsim profile: rank the projections by how much analog execution alone hurts the metric."""
from __future__ import annotations

import dataclasses
import sys

from tqdm import tqdm

from simulator.atomic import HDF5, JSON, PLOT
from simulator.commands.accuracy import compact_names, format_time, parse_times
from simulator.commands.common import (
    add_accuracy_args, add_hw_args, bounded_int, check_max_tokens, check_outputs, load_hw_arg, load_model_checked,
    write_json_atomic, wrote,
)
from simulator.commands.sweep import MAX_WORKERS, dask_client
from simulator.errors import UserError

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
    p.add_argument("--json", metavar="FILE", help="write the profile as JSON (.json; - for stdout)")
    p.add_argument("--h5", metavar="FILE",
                   help="write the per-seed values as HDF5 (.h5; axes named, see docs/outputs.md)")
    p.add_argument("--plot", metavar="FILE", help="bar chart of the ranking (.png, .svg or .pdf)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="Dask scheduler address; the seeds are split over its workers (default: a local cluster)")
    p.add_argument("--workers", type=bounded_int(MAX_WORKERS), default=2, metavar="N",
                   help="local cluster worker processes, one share of the seeds each (default 2)")
    p.add_argument("--local", action="store_true", help="measure in this process, no Dask")
    p.set_defaults(func=run)


def format_profile(summary: dict, limit: int = 60) -> str:
    """Ranked table: analog-alone and digital-alone degradation at the horizon."""
    horizon = format_time(summary["times_s"][-1])
    all_analog = summary["all_analog"][-1]
    lines = [f"FP {summary['metric']}: {summary['fp']:.4f}; all analog at {horizon}: "
             f"{all_analog['delta']:+.4f} +- {all_analog['std']:.4f} ({summary['seeds']} "
             f"seed{'s' if summary['seeds'] != 1 else ''})",
             f"{'rank':>4}  {'projection':<32} {'analog alone':>13} {'std':>9} {'digital alone':>14}"]
    for rank, entry in enumerate(summary["projections"][:limit], start=1):
        lines.append(f"{rank:>4}  {entry['name']:<32} {entry['analog_alone_delta']:>+13.4f} "
                     f"{entry['std']:>9.4f} {entry['digital_alone_delta']:>+14.4f}")
    lines.append("per type: " + ", ".join(f"{g['type']} {g['analog_alone_delta_sum']:+.3f}"
                                          for g in summary["per_type"]))
    return "\n".join(lines)


def seed_shares(loaded, projections, seeds: list[int], processes: int, model_copies: int) -> list[tuple[int, ...]]:
    """The seeds in parts that `processes` measure side by side: one share each when all
    chip realisations fit the memory available, else groups that do (said on stderr)."""
    from simulator.analysis.profile import seed_groups
    from simulator.commands.memory import seeds_at_once
    shares = seed_groups(seeds, processes, seeds_at_once(loaded, projections, len(seeds), processes, model_copies))
    if len(shares) > min(processes, len(seeds)):
        print(f"memory: the {len(seeds)} seeds are measured in {len(shares)} groups of at most "
              f"{max(map(len, shares))}, {processes} at a time, so that their chip realisations fit",
              file=sys.stderr)
    return shares


def run(args) -> int:
    check_outputs(("--json", args.json, JSON), ("--h5", args.h5, HDF5), ("--plot", args.plot, PLOT))
    times_s = parse_times(args.t)
    hw = load_hw_arg(args)
    from simulator.analysis.profile import (ProfilePart, measure_part, measure_parts_on_dask, merge_parts,
                                            model_projections, profile_result, profile_sets, write_profile_h5)
    from simulator.mapping.resolve import analog_names, resolve_targets
    loaded = load_model_checked(args.model)
    check_max_tokens(args.max_tokens, loaded)
    # The one capacity rule (mapping/resolve.py): only what all-analog puts on tiles is profiled.
    fitting = set(analog_names(resolve_targets(args.model, hw, "all-analog")))
    projections = model_projections(loaded)
    left_digital = [name for name in projections if name not in fitting]
    profiled = tuple(name for name in projections if name in fitting)
    if not profiled:
        raise UserError(f"--hw {args.hw}: no projection of {args.model} fits its analog tiles "
                        f"(analog.tiles={hw.analog.tiles}); nothing to profile")
    if left_digital:
        print(f"digital (do not fit the tiles): {compact_names(left_digital)}", file=sys.stderr)
    seeds = list(range(args.seeds))
    part = ProfilePart(args.model, hw, tuple(seeds), len(seeds), args.max_tokens, profiled, tuple(times_s))
    runs = len(profile_sets(profiled)) * len(times_s)
    # Where the processes are known before any work (here, or a local cluster: this process
    # keeps its copy of the model beside the workers', hence + 1), refuse or group now; a
    # remote scheduler's workers are counted once connected.
    shares = None
    if args.local:
        shares = seed_shares(loaded, profiled, seeds, 1, model_copies=1)
    elif not args.scheduler:
        shares = seed_shares(loaded, profiled, seeds, args.workers, model_copies=args.workers + 1)
    with tqdm(total=runs * len(shares or [seeds]), unit="run", desc="profile", file=sys.stderr,
              dynamic_ncols=True) as bar:  # one bar step per run of one share of the seeds
        if args.local:
            metric, fp, measured = merge_parts([measure_part(dataclasses.replace(part, seeds=share),
                                                             progress=bar.update, loaded_model=loaded)
                                                for share in shares])
        else:
            with dask_client(args.scheduler, args.workers) as client:
                workers = len(client.scheduler_info()["workers"]) or args.workers
                if shares is None:
                    shares = seed_shares(loaded, profiled, seeds, workers, model_copies=workers + 1)
                    bar.total = runs * len(shares)
                    bar.refresh()
                parts = [dataclasses.replace(part, seeds=share, torch_threads=1) for share in shares]
                metric, fp, measured = measure_parts_on_dask(client, parts, progress=bar.update)
    result = profile_result(metric, fp, profiled, times_s, measured)
    summary = result.to_dict() | {"model": args.model, "hw": hw.name, "digital_projections": left_digital}
    print(format_profile(summary))
    if args.json:
        write_json_atomic(args.json, summary)
        wrote(args.json)
    if args.h5:
        write_profile_h5(result, args.h5)
        wrote(args.h5)
    if args.plot:
        from simulator.analysis.plots import plot_profile
        plot_profile(summary, args.plot)
        wrote(args.plot)
    return 0
