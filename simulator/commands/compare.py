"""`aimcsim compare`: speedup and energy gain of a config against a baseline (default: digital.yaml).

Both systems run the same workload through the same engine; the mapping applies to
the candidate (the baseline, having no tiles, runs everything digital).
"""
from __future__ import annotations

from simulator.atomic import JSON
from simulator.commands.common import (
    add_hw_args, add_workload_args, check_outputs, graph_kwargs, load_hw_arg, presets_help,
    write_json_atomic, wrote,
)
from simulator.hw.loader import load_hw
from simulator.report.table import format_energy_pj, format_time_ns
from simulator.run import simulate_workload


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="speedup and energy gain of a config vs a digital baseline",
                       description=__doc__.split("\n")[0])
    add_hw_args(p)
    p.add_argument("--baseline", default="digital", metavar="CONFIG",
                   help=f"baseline config: a preset name ({presets_help()}) or a YAML path; "
                        "it runs all-digital (default digital)")
    add_workload_args(p, default_workload="gpt2")
    p.add_argument("--mapping", default="all-analog",
                   help="mapping of the candidate: all-analog | all-digital | YAML (default all-analog)")
    p.add_argument("--engine", default="fast", choices=("simpy", "fast"),
                   help="timing engine for both systems: fast (numba) or simpy (discrete-event); "
                        "both give identical schedules (default fast)")
    p.add_argument("--json", metavar="FILE",
                   help="write both reports and the gains as JSON (.json; - for stdout)")
    p.set_defaults(func=run)


def run(args) -> int:
    check_outputs(("--json", args.json, JSON))
    candidate_hw = load_hw_arg(args)
    baseline_hw = load_hw(args.baseline)
    kw = dict(engine=args.engine, **graph_kwargs(args))
    candidate = simulate_workload(candidate_hw, args.workload, args.phase, args.mapping, **kw)
    baseline = simulate_workload(baseline_hw, args.workload, args.phase, "all-digital", **kw)
    result = compare_reports(candidate.report.to_dict(), baseline.report.to_dict())
    print(format_comparison(result, candidate_hw.name, baseline_hw.name))
    if args.json:
        write_json_atomic(args.json, result)
        wrote(args.json)
    return 0


def compare_reports(candidate: dict, baseline: dict) -> dict:
    """Gains > 1 mean the candidate is better."""
    return {
        "speedup": baseline["latency_ns"] / candidate["latency_ns"],
        "energy_gain": baseline["energy_pj"] / candidate["energy_pj"],
        "edp_gain": (baseline["latency_ns"] * baseline["energy_pj"])
        / (candidate["latency_ns"] * candidate["energy_pj"]),
        "candidate": candidate,
        "baseline": baseline,
    }


def format_comparison(result: dict, candidate_name: str, baseline_name: str) -> str:
    c, b = result["candidate"], result["baseline"]
    """Latency, energy and throughput in human units, gains > 1x favour the candidate."""
    rows = (("latency", format_time_ns, "latency_ns", result["speedup"]),
            ("energy", format_energy_pj, "energy_pj", result["energy_gain"]),
            ("throughput", _tokens_per_s, "tokens_per_s", result["speedup"]))
    lines = [f"{'':<12}{candidate_name:>18}{baseline_name:>18}{'gain':>10}"]
    for label, fmt, key, gain in rows:
        lines.append(f"{label:<12}{fmt(c[key]):>18}{fmt(b[key]):>18}{gain:>9.2f}x")
    lines.append(f"{'EDP gain':<12}{'':>36}{result['edp_gain']:>9.2f}x")
    return "\n".join(lines)


def _tokens_per_s(value: float) -> str:
    return f"{value:,.0f} tok/s" if value >= 100 else f"{value:.3g} tok/s"
