"""aimcsim search: the analog/digital mapping with the best latency, energy or EDP within an accuracy budget."""
from __future__ import annotations

import functools
import math
import sys
import time

import numpy as np
from tqdm import tqdm

from simulator.atomic import JSON, PLOT, YAML
from simulator.commands.accuracy import format_time, parse_duration_s
from simulator.commands.common import (
    add_accuracy_args, add_hw_args, add_phase_args, bounded_int, check_max_tokens, check_outputs, chunk_tokens_arg,
    load_hw_arg, load_model_checked, non_negative_int, write_json_atomic, wrote,
)
from simulator.commands.profile import PROFILE_TOKENS
from simulator.errors import UserError
from simulator.ir.graph import OpKind
from simulator.report.table import format_energy_pj, format_time_ns

PARETO_BUDGET_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)
MAX_ROUNDS = 1000  # MILP rounds; each costs a functional run
MAX_VERIFICATIONS = 100_000
MAX_COSTED_SWAPS = 1_000_000


def add_parser(sub) -> None:
    from simulator.analysis.search import DEFAULT_COSTED_SWAPS, GRANULARITIES, OBJECTIVES
    p = sub.add_parser("search", help="accuracy-constrained analog/digital mapping search",
                       description=__doc__.split("\n")[0])
    add_hw_args(p, default="hermes64")
    add_accuracy_args(p, times="1y", times_help="drift horizon", seeds=3, max_tokens=PROFILE_TOKENS)
    p.add_argument("--objective", choices=OBJECTIVES, default="latency",
                   help="what the mapping minimises: latency (ns of the timed phase), energy (pJ) "
                        "or edp (latency x energy) (default latency)")
    p.add_argument("--budget", type=non_negative_float, default=1.0,
                   help="allowed degradation of the metric at the horizon, e.g. delta perplexity (default 1.0)")
    p.add_argument("--granularity", choices=GRANULARITIES, default="projection",
                   help="unit the search moves between analog and digital: projection (each "
                        "one alone), layer (all projections of a transformer block) or type "
                        "(e.g. every mlp.c_fc) (default projection)")
    add_phase_args(p)
    p.add_argument("--chunk-tokens", type=chunk_tokens_arg, default="auto", metavar="N",
                   help="prefill tokens per chunk the candidates are costed at: N, 'none' (one chunk), or "
                        "'auto' (default): the size aimcsim run's auto chunking picks for the all-analog "
                        "mapping; the reported mappings are re-costed at run's default either way")
    p.add_argument("--max-rounds", type=bounded_int(MAX_ROUNDS), default=6,
                   help="MILP verify-and-adjust rounds (proxy budget relaxed or tightened; default 6)")
    p.add_argument("--max-verifications", type=non_negative_int("--max-verifications", MAX_VERIFICATIONS), default=30,
                   help="functional runs the local search after the MILP may spend (0: none; default 30)")
    p.add_argument("--costed-swaps", type=non_negative_int("--costed-swaps", MAX_COSTED_SWAPS),
                   default=DEFAULT_COSTED_SWAPS, metavar="N",
                   help="swap moves the local search costs at a time, those whose single flips predict the "
                        f"most first; the next batch only when none improves (0: all at once; default "
                        f"{DEFAULT_COSTED_SWAPS})")
    p.add_argument("--pareto-budgets", default=None,
                   help="comma-separated budgets for the Pareto sweep (default budget x "
                        + ",".join(f"{f:g}" for f in PARETO_BUDGET_FACTORS) + ")")
    p.add_argument("--pareto-proxy", action="store_true",
                   help="report Pareto points with proxy deltas instead of verifying each one")
    p.add_argument("--json", metavar="FILE", help="write the search result as JSON (.json; - for stdout)")
    p.add_argument("--out", metavar="FILE",
                   help="write the chosen mapping as YAML (.yaml; for aimcsim run --mapping)")
    p.add_argument("--pareto-plot", metavar="FILE",
                   help="Pareto plot of latency and energy vs degradation (.png, .svg or .pdf)")
    p.set_defaults(func=run)


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:  # also rejects nan
        raise UserError(f"--budget: expected a number >= 0 (finite), got {text!r}")
    return value


def parse_budgets(text: str | None, budget: float) -> list[float]:
    if text is None:
        return [budget * factor for factor in PARETO_BUDGET_FACTORS]
    try:
        budgets = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--pareto-budgets: expected comma-separated numbers, got {text!r}") from None
    if not budgets or any(not 0 <= b < math.inf for b in budgets):
        raise UserError(f"--pareto-budgets: expected one or more numbers >= 0, got {text!r}")
    return budgets


def projection_macs(graph) -> dict[str, int]:
    macs: dict[str, int] = {}
    for op in graph.ops:
        if op.kind == OpKind.LINEAR:
            macs[op.projection] = macs.get(op.projection, 0) + op.macs
    return macs


def run(args) -> int:
    check_outputs(("--json", args.json, JSON), ("--out", args.out, YAML),
                  ("--pareto-plot", args.pareto_plot, PLOT))
    horizon_s = parse_duration_s(args.t)
    budgets = parse_budgets(args.pareto_budgets, args.budget)
    hw = load_hw_arg(args)
    from simulator.analysis.evaluate_fast import RunDefaultCost
    from simulator.analysis.pareto import budget_sweep, verified_front, verified_mappings
    from simulator.analysis.profile import make_probe
    from simulator.analysis.search import (CachedCost, EngineCost, Problem, group_gains, make_groups, run_search,
                                           outcome_points, search_runs_at_most)
    from simulator.commands.memory import check_seeds_memory
    from simulator.mapping.resolve import fits_alone
    from simulator.run import default_phase
    from workloads.registry import build_graph

    phase = args.phase or default_phase(args.model)
    recost = RunDefaultCost(args.model, phase, hw, seq=args.seq)
    chunk_tokens = args.chunk_tokens
    if chunk_tokens == "auto":
        chunk_tokens = search_chunk_tokens(args.model, hw, recost)
    graph = build_graph(args.model, phase, seq=args.seq, chunk_tokens=chunk_tokens)
    engine = EngineCost(graph, hw)
    cost = CachedCost(engine)
    loaded = load_model_checked(args.model)
    check_max_tokens(args.max_tokens, loaded)
    check_seeds_memory(loaded, [p.name for p in graph.projections if fits_alone(p, hw)], args.seeds)
    probe = make_probe(loaded, hw, list(range(args.seeds)), args.max_tokens)
    timed = {p.name for p in graph.projections}
    eligible = [name for name in probe.projections  # the one capacity rule (mapping/resolve.py)
                if name in timed and fits_alone(graph.projection(name), hw)]
    if not eligible:
        raise UserError(f"--hw {args.hw}: no projection of {args.model} fits its analog tiles "
                        f"(analog.tiles={hw.analog.tiles}); nothing to search")
    bar = tqdm(total=len(eligible), desc="search", unit="run", file=sys.stderr, dynamic_ncols=True)

    @functools.lru_cache(maxsize=None)
    def measure(analog: frozenset[str]) -> float:
        started = time.perf_counter()
        delta = float(probe.degradation(analog, [horizon_s]).mean())
        measure.runs += 1
        bar.update(1)
        tqdm.write(f"  functional run {measure.runs}: {len(analog)} analog projection(s) -> delta "
                   f"{delta:+.4f} ({time.perf_counter() - started:.1f} s)", file=sys.stderr)
        return delta

    measure.runs = 0

    with bar:
        deltas = {name: measure(frozenset({name})) for name in eligible}
        macs = projection_macs(graph)
        groups = make_groups([(n, macs[n], engine.tiles(n)) for n in eligible], deltas, args.granularity)
        problem = Problem(groups, args.objective, args.budget, engine.tile_capacity())
        bar.total = len(eligible) + search_runs_at_most(problem, args.max_rounds, args.max_verifications) + (
            0 if args.pareto_proxy else len(budgets) * 2)  # an upper bound: the ETA is conservative
        bar.refresh()
        outcome = run_search(problem, cost, measure, np.random.default_rng(0), max_rounds=args.max_rounds,
                             max_verifications=args.max_verifications, costed_swaps=args.costed_swaps)
        search_runs = measure.runs
        _, gains = group_gains(problem, cost, outcome.greedy.chosen.groups)
        points = outcome_points(outcome)
        sweep = budget_sweep(problem, cost, None if args.pareto_proxy else measure, gains, points, budgets)
    front = verified_front(verified_mappings(outcome, [(frozenset({n}), d) for n, d in deltas.items()], sweep),
                           cost, args.objective, outcome.chosen.projections)

    summary = {"model": args.model, "hw": hw.name, "metric": probe.metric, "fp": probe.fp,
               "t_s": horizon_s, "seeds": args.seeds, "granularity": args.granularity,
               "phase": graph.phase, "tokens": args.seq, "chunk_tokens": chunk_tokens,
               "eval_tokens": probe_tokens(probe),
               "forced_digital": [p.name for p in graph.projections if p.name not in set(eligible)],
               "functional_runs": {"profile": len(eligible), "search": search_runs - len(eligible),
                                   "pareto": measure.runs - search_runs},
               "engine_evaluations": cost.evaluations,
               **outcome.to_dict(),
               "pareto": {"budgets": [p.to_dict() for p in sweep], "verified": [p.to_dict() for p in front]}}
    if "latency_ns" not in summary["all_analog"]:
        summary["all_analog"] = _fitting_all_analog(args, hw, cost, measure, args.objective)
    summary["run_default"] = recost_at_run_default(recost, summary)
    print(format_search(summary))
    if args.out:
        from simulator.mapping.io import save_mapping
        save_mapping(engine.mapping(outcome.chosen.projections, strategy=f"search-{args.objective}"), args.out)
        wrote(args.out)
    if args.json:
        write_json_atomic(args.json, summary)
        wrote(args.json)
    if args.pareto_plot:
        from simulator.analysis.plots import plot_pareto
        plot_pareto(summary, args.pareto_plot)
        wrote(args.pareto_plot)
    return 0


def search_chunk_tokens(model: str, hw, recost) -> int | None:
    """The chunk size `aimcsim run --chunk-tokens auto` picks for the all-analog mapping
    (where pipelining over chunks matters most): one chunk ranks mappings unlike run's
    default on weight-stationary fabrics (benchmarks/mapping_eval.py, docs/analysis.md)."""
    from simulator.mapping.resolve import analog_names, resolve_targets
    return recost(frozenset(analog_names(resolve_targets(model, hw, "all-analog"))))[1]


REPORTED_ROWS = (("chosen", None), ("greedy", "greedy"), ("all analog", "all_analog"), ("all digital", "all_digital"))


def recost_at_run_default(recost, summary: dict) -> dict:
    """The reported mappings (chosen, greedy, all analog, all digital) re-costed at `aimcsim
    run`'s default chunking: the search costs candidates at one chunk, which ranks them
    alike (benchmarks/mapping_eval.py: Spearman over random mappings) but is not the
    figure `aimcsim run --mapping` prints."""
    rows = {}
    for label, key in REPORTED_ROWS:
        row = summary if key is None else summary[key]
        if "latency_ns" not in row:
            continue
        figures, chunk_tokens = recost(frozenset(row["analog_projections"]))
        rows[label] = {"latency_ns": figures.latency_ns, "energy_pj": figures.energy_pj,
                       "chunk_tokens": chunk_tokens}
    return rows


def probe_tokens(probe) -> int | None:
    """Held-out tokens each functional run scores (None when the probe does not say)."""
    return getattr(probe, "tokens", None)


def _fitting_all_analog(args, hw, cost, measure, objective: str) -> dict:
    """The all-analog reference as `aimcsim run --mapping all-analog` maps it (the one capacity
    rule, mapping/resolve.py) when the whole model does not fit the tiles at once."""
    from simulator.mapping.resolve import analog_names, resolve_targets
    analog = frozenset(analog_names(resolve_targets(args.model, hw, "all-analog")))
    figures = cost(analog)
    return {"verified_delta": float(measure(analog)) if analog else 0.0,
            "latency_ns": figures.latency_ns, "energy_pj": figures.energy_pj,
            "objective_value": figures.objective(objective), "analog_projections": sorted(analog),
            "note": "what the tiles hold, as aimcsim run --mapping all-analog"}


def _chunking(chunk_tokens: int | None) -> str:
    return "one chunk" if chunk_tokens is None else f"chunks of {chunk_tokens}"


def format_search(summary: dict) -> str:
    kind = "verified_delta"
    lines = [f"{summary['model']} on {summary['hw']}: minimise {summary['objective']}, "
             f"delta {summary['metric']} <= {summary['budget']:g} at t = {format_time(summary['t_s'])} "
             f"(FP {summary['fp']:.4f}, {summary['seeds']} seed{'s' if summary['seeds'] != 1 else ''})",
             f"{'':<30} {'search: ' + _chunking(summary.get('chunk_tokens')):>29} "
             f"{'aimcsim run default chunking':>38}",
             f"{'mapping':<12} {'analog':>6} {'delta':>10} {'latency':>14} {'energy':>14} "
             f"{'latency':>14} {'energy':>14} {'chunk':>8}"]
    recosted = summary.get("run_default", {})
    for label, key in REPORTED_ROWS:
        row = summary if key is None else summary[key]
        if "latency_ns" not in row:
            lines.append(f"{label:<12} does not fit the tiles")
            continue
        line = (f"{label:<12} {len(row['analog_projections']):>6} {row[kind]:>+10.4f} "
                f"{format_time_ns(row['latency_ns']):>14} {format_energy_pj(row['energy_pj']):>14}")
        if label in recosted:
            again = recosted[label]
            line += (f" {format_time_ns(again['latency_ns']):>14} {format_energy_pj(again['energy_pj']):>14} "
                     f"{again['chunk_tokens'] or 'none':>8}")
        lines.append(line)
    lines.append(f"chosen by {summary['source']}" + (f" ({summary['note']})" if summary["note"] else "")
                 + f"; proxy calibration x{summary['calibration']:.3g}, {len(summary['milp_rounds'])} MILP round(s), "
                 f"local search {summary['local_search']['accepted_moves']} of "
                 f"{summary['local_search']['verifications']} verified move(s) accepted")
    verified = summary["pareto"]["verified"]
    lines.append(f"Pareto: {sum(p['on_front'] for p in verified)} of {len(verified)} verified mappings on the "
                 f"(delta, {summary['objective']}) front; budget sweep: "
                 + ", ".join(f"{p['budget']:g} -> {len(p['analog_projections'])} analog {p['delta']:+.3f}"
                             for p in summary["pareto"]["budgets"]))
    return "\n".join(lines)
