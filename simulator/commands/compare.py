"""`aimcsim compare`: speedup and energy gain of a config against a baseline (default: its digital twin).

Both systems run the same workload through the same engine; the mapping applies to the
candidate, the baseline runs everything digital. The default baseline is the candidate's
own config with `analog.tiles=0` (same cores, SRAM, interconnect and DRAM), so the gains
isolate what the analog tiles contribute; `--baseline CONFIG` names another config.
With `--chunk-tokens auto` (the default) each system runs at its own fastest chunking.
"""
from __future__ import annotations

import dataclasses

from simulator.atomic import JSON
from simulator.commands.common import (
    add_hw_args, add_workload_args, check_outputs, check_timing_args, graph_kwargs, load_hw_arg,
    write_json_atomic, wrote,
)
from simulator.hw.loader import load_hw, parse_overrides
from simulator.report.table import format_energy_pj, format_time_ns
from simulator.run import simulate_workload

TWIN = "twin"


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="speedup and energy gain of a config vs its digital twin (or a baseline)",
                       description=__doc__.split("\n")[0])
    add_hw_args(p)
    p.add_argument("--baseline", default=TWIN,
                   help="baseline config, preset name or YAML, run all-digital; default: the "
                        "candidate config with analog.tiles=0 (its digital twin)")
    add_workload_args(p, default_workload="gpt2")
    p.add_argument("--mapping", default="all-analog",
                   help="mapping of the candidate: all-analog | all-digital | YAML (default all-analog)")
    p.add_argument("--engine", default="fast", choices=("fast", "des", "simpy"),
                   help="timing engine for both systems (identical schedules; default fast)")
    p.add_argument("--json", metavar="FILE",
                   help="write both reports and the gains as JSON (.json; - for stdout)")
    p.set_defaults(func=run)


def digital_twin(args):
    """The candidate's config (with its --set overrides) without analog tiles."""
    overrides = dict(parse_overrides(args.set) if args.set else {}, **{"analog.tiles": 0})
    twin = load_hw(args.hw, overrides)
    return dataclasses.replace(twin, name=f"{twin.name} digital twin")


def run(args) -> int:
    check_outputs(("--json", args.json, JSON))
    candidate_hw = load_hw_arg(args)
    baseline_hw = digital_twin(args) if args.baseline == TWIN else load_hw(args.baseline)
    check_timing_args(args, candidate_hw, args.workload, args.mapping)
    check_timing_args(args, baseline_hw, args.workload, "all-digital")
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


def _chunking(report: dict) -> str:
    w = report.get("workload", {})
    if w.get("phase") == "decode":
        return "-"
    return "one chunk" if (w.get("chunks") or 1) == 1 else f"{w['chunks']} x {w['chunk_tokens']}"


def format_comparison(result: dict, candidate_name: str, baseline_name: str) -> str:
    """Both systems side by side in human units, with the gain and each figure's bound ratio."""
    c, b = result["candidate"], result["baseline"]
    width = max(18, len(candidate_name) + 2, len(baseline_name) + 2)
    rows = [
        ("latency", format_time_ns(c["latency_ns"]), format_time_ns(b["latency_ns"]), result["speedup"]),
        ("energy", format_energy_pj(c["energy_pj"]), format_energy_pj(b["energy_pj"]), result["energy_gain"]),
        ("throughput", _tokens_per_s(c["tokens_per_s"]), _tokens_per_s(b["tokens_per_s"]), result["speedup"]),
        ("static energy", format_energy_pj(c.get("energy_breakdown_pj", {}).get("static", 0.0)),
         format_energy_pj(b.get("energy_breakdown_pj", {}).get("static", 0.0)), None),
        ("chunking", _chunking(c), _chunking(b), None),
    ]
    for figure in ("latency", "energy"):
        ratios = [r.get("bound", {}).get(f"{figure}_ratio") for r in (c, b)]
        if all(ratios):
            rows.append((f"{figure} / bound", f"{ratios[0]:.2f}x", f"{ratios[1]:.2f}x", None))
    lines = [f"{'':<16}{candidate_name:>{width}}{baseline_name:>{width}}{'gain':>10}"]
    for label, cand, base, gain in rows:
        lines.append(f"{label:<16}{cand:>{width}}{base:>{width}}" + (f"{gain:>9.2f}x" if gain else ""))
    lines.append(f"{'EDP gain':<16}{'':>{2 * width}}{result['edp_gain']:>9.2f}x")
    return "\n".join(lines)


def _tokens_per_s(value: float) -> str:
    return f"{value:,.0f} tok/s" if value >= 100 else f"{value:.3g} tok/s"
