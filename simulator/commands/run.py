"""`aimcsim run`: latency, energy, utilisation (and accuracy) of a workload on a config.

With no flags it runs the main job on the embedded default model, so a fresh
install answers the three questions at once: how fast, how much energy, how accurate.
"""
from __future__ import annotations

import argparse
import sys

from simulator.atomic import HDF5, JSON
from simulator.commands.common import (
    MAX_SEEDS, add_hw_args, add_workload_args, bounded_int, check_outputs, check_timing_args, graph_kwargs,
    load_hw_arg, write_json_atomic, wrote,
)
from simulator.report.h5 import write_run_h5
from simulator.report.table import format_report
from simulator.report.trace import write_chrome_trace
from simulator.run import simulate_workload

DEFAULT_HW = "hermes64"
DEFAULT_WORKLOAD = "gpt2-pydoc"
QUICK_EVAL_TOKENS = 4096  # held-out tokens for the accuracy figure next to timing


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="simulate a workload: latency, energy, utilisation, timeline",
                       description=__doc__.split("\n")[0])
    add_hw_args(p, default=DEFAULT_HW)
    add_workload_args(p, default_workload=DEFAULT_WORKLOAD)
    p.add_argument("--mapping", default="all-analog",
                   help="all-analog | all-digital | mapping YAML (default all-analog)")
    p.add_argument("--engine", default="fast", choices=("fast", "des", "simpy"),
                   help="timing engine: fast (numba) or des (simpy, the readable reference; "
                        "'simpy' is the same); both give identical schedules (default fast)")
    p.add_argument("--accuracy", action=argparse.BooleanOptionalAction, default=None,
                   help="also measure accuracy of the mapped model "
                        f"(default: on for the embedded {DEFAULT_WORKLOAD})")
    p.add_argument("--t", default="1d", metavar="TIME",
                   help="drift time after programming for the accuracy figure: seconds or a number "
                        "with a unit s, min, h, d, w, mo, y (default 1d)")
    p.add_argument("--seeds", type=bounded_int(MAX_SEEDS), default=3, metavar="N",
                   help="chip realisations for the accuracy figure (default 3)")
    p.add_argument("--adapters", metavar="FILE", default=None,
                   help="adapter file from `aimcsim adapt`: also time the model with its LoRA ops "
                        "(digital, on the cores) and report the overhead and the adaptation cost")
    p.add_argument("--json", metavar="FILE", help="write the report as JSON (.json; - for stdout)")
    p.add_argument("--trace", metavar="FILE",
                   help="write a Chrome trace-event timeline, opens in Perfetto (.json)")
    p.add_argument("--h5", metavar="FILE",
                   help="write the report and per-task schedule to HDF5 (.h5; see docs/outputs.md)")
    p.set_defaults(func=run)


def run(args) -> int:
    check_outputs(("--json", args.json, JSON), ("--trace", args.trace, JSON), ("--h5", args.h5, HDF5))
    from simulator.commands.accuracy import parse_times
    from simulator.commands.memory import check_checkpoint_memory
    parse_times(args.t)  # a bad --t fails now, not after the timing run
    hw = load_hw_arg(args)
    adapters = _checked_adapters(args) if getattr(args, "adapters", None) else None
    wants_accuracy = args.workload == DEFAULT_WORKLOAD if args.accuracy is None else args.accuracy
    if wants_accuracy:  # a checkpoint too large to load fails before its graph is mapped
        check_checkpoint_memory(args.workload, "--workload")
    check_timing_args(args, hw, args.workload, args.mapping)
    loaded = _checked_model(args, hw) if wants_accuracy else None
    sim = simulate_workload(hw, args.workload, args.phase, args.mapping, engine=args.engine,
                            **graph_kwargs(args))
    result = sim.report.to_dict()
    print(format_report(sim.report))
    if adapters is not None:
        result["adapters"] = _adapter_overhead(args, hw, adapters, result["workload"].get("chunk_tokens"))
    if loaded is not None:
        result["accuracy"] = _accuracy_next_to_timing(args, hw, loaded, result["mapping"], adapters)
    if args.json:
        write_json_atomic(args.json, result)
    if args.trace:
        write_chrome_trace(sim.task_graph, sim.schedule, args.trace, graph=sim.graph)
    if args.h5:
        write_run_h5(sim.report, sim.task_graph, sim.schedule, args.h5, graph=sim.graph, hw=hw)
    for path in (args.json, args.trace, args.h5):
        wrote(path)
    sys.stdout.flush()  # the warnings follow the report, also when both go to one terminal
    for line in sim.report.programming_warnings():
        print(line, file=sys.stderr)
    return 0


def _checked_adapters(args):
    """The adapter file, checked against the workload's projections before any simulation."""
    from simulator.adapt.cost import check_adapter_shapes
    from simulator.adapt.files import load_adapters
    from simulator.run import default_phase
    from workloads.registry import build_graph

    adapters = load_adapters(args.adapters)
    shapes = dict(graph_kwargs(args), chunk_tokens=None)  # projection shapes do not depend on chunking
    graph = build_graph(args.workload, args.phase or default_phase(args.workload), **shapes)
    check_adapter_shapes(adapters, graph)
    return adapters


def _adapter_overhead(args, hw, adapters, chunk_tokens: int | None) -> dict:
    """The same workload, mapping and chunking (as the main run chose it) with the file's
    adapters as digital ops, side by side."""
    from simulator.adapt.cost import adapter_ranks, format_overhead, simulate_with_adapters

    overhead = simulate_with_adapters(hw, args.workload, adapter_ranks(adapters), args.phase, args.mapping,
                                      engine=args.engine, **dict(graph_kwargs(args), chunk_tokens=chunk_tokens))
    print(format_overhead(overhead))
    return overhead


def _checked_model(args, hw):
    """The weights for the accuracy figure, loaded before the timing run so that a shape-only
    workload or too many --seeds fail first (`run` has already checked the checkpoint's size)."""
    from simulator.commands.memory import check_seeds_memory
    from simulator.mapping.resolve import analog_names, resolve_targets
    from workloads.registry import load_model
    loaded = load_model(args.workload)
    check_seeds_memory(loaded, analog_names(resolve_targets(args.workload, hw, args.mapping)), args.seeds)
    return loaded


def _accuracy_next_to_timing(args, hw, loaded, targets: dict, adapters=None) -> dict:
    """A quick accuracy figure of the same mapping (a short eval, few seeds)."""
    from simulator.accuracy.evaluate import evaluate_accuracy
    from simulator.commands.accuracy import format_table, parse_times

    result = evaluate_accuracy(loaded, hw, targets, parse_times(args.t),
                               args.seeds, max_tokens=QUICK_EVAL_TOKENS, adapters=adapters)
    print("\naccuracy of this mapping (quick look; `aimcsim accuracy` scores the whole split)")
    print(format_table(result))
    return result.to_dict()
