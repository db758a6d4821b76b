"""Inner-loop speed of the mapping search: one candidate = place + lower + fast engine + energy sum.

Workload: GPT-2 small, prefill of 128 tokens at the search's chunking (one chunk). For
each config, an EngineCost is built once, as in `aimcsim search`, and three kinds of
candidates are timed, each eligible projection analog with probability 1/2:
  * fresh: new seeded random mappings in every repeat (the Lowerer's fragment cache
    only helps where a placement recurs): `per_s`, the figure the issue asks for;
  * neighbours: one projection flipped from a fixed random mapping, as the local
    search moves (the prefix before the flipped projection keeps its placements);
  * revisited: the same candidates again (every fragment cached; what this benchmark
    reported before, an upper bound).
Reported per kind: median ms per evaluation over the repeats, its split into placement,
lowering and scheduling, and evaluations per second. Times are CPU time of this process
(time.process_time), so other processes on a shared machine inflate them less than
wall time would; the wall-clock figure is printed beside. The first evaluation (numba
compilation, cold caches) is excluded and reported separately.

With --spearman N (default 200), N further random mappings are costed at one chunk, at
the search's default chunking (`search --chunk-tokens auto`: the size run's auto chunking
picks for all analog) and at `aimcsim run`'s default (auto) chunking, and the Spearman
rank correlations of latency and of energy against run's default are reported (the
issue asks for >= 0.95 each; the search re-costs the mappings it reports at run's default).

    python benchmarks/mapping_eval.py [--json F] [--candidates 40] [--repeats 5] [--spearman 200]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from scipy.stats import spearmanr

from simulator.analysis.evaluate_fast import RunDefaultCost
from simulator.analysis.search import EngineCost, schedule_cost
from simulator.commands.common import write_json_atomic
from simulator.commands.search import search_chunk_tokens
from simulator.engine import fast
from simulator.hw.loader import load_hw
from workloads.registry import build_graph

CONFIGS = ("hermes64", "analog_fabric")
STAGES = ("place", "lower", "simulate")


def eligible_projections(cost: EngineCost) -> list[str]:
    return [p.name for p in cost.graph.projections if cost.tiles(p.name) <= cost.hw.analog.tiles]


def fits(cost: EngineCost, analog) -> bool:
    return cost.tile_capacity() is None or sum(cost.tiles(n) for n in analog) <= cost.tile_capacity()


def random_candidates(cost: EngineCost, count: int, seed: int) -> list[frozenset[str]]:
    eligible = eligible_projections(cost)
    rng = np.random.default_rng(seed)
    candidates = []
    while len(candidates) < count:
        analog = frozenset(n for n in eligible if rng.random() < 0.5)
        if fits(cost, analog):
            candidates.append(analog)
    return candidates


def neighbours(cost: EngineCost, base: frozenset[str], count: int, seed: int) -> list[frozenset[str]]:
    """Mappings one projection away from `base` (added or dropped), seeded order."""
    eligible = eligible_projections(cost)
    rng = np.random.default_rng(seed)
    moves = [base ^ {name} for name in rng.permutation(eligible)]
    return [m for m in moves if fits(cost, m)][:count]


def time_candidates(cost: EngineCost, candidates) -> dict[str, float]:
    """CPU seconds spent in each stage over all candidates, and the wall seconds in all."""
    spent = dict.fromkeys(STAGES, 0.0)
    wall = time.perf_counter()
    for analog in candidates:
        t0 = time.process_time()
        mapping = cost.mapping(analog)
        t1 = time.process_time()
        tg = cost.lowerer.lower(mapping)
        t2 = time.process_time()
        schedule_cost(tg, fast.simulate(tg), cost.hw.digital.sram_static_power_mw)
        t3 = time.process_time()
        spent["place"] += t1 - t0
        spent["lower"] += t2 - t1
        spent["simulate"] += t3 - t2
    spent["wall"] = time.perf_counter() - wall
    return spent


def summarise(per_repeat: list[dict[str, float]], n: int) -> dict:
    per_eval_ms = [1e3 * sum(r[s] for s in STAGES) / n for r in per_repeat]
    median_ms = statistics.median(per_eval_ms)
    wall_ms = statistics.median(1e3 * r["wall"] / n for r in per_repeat)
    return {"candidates": n, "median_cpu_ms_per_eval": median_ms, "per_s": 1e3 / median_ms,
            "median_wall_ms_per_eval": wall_ms, "wall_per_s": 1e3 / wall_ms,
            "median_cpu_ms_by_stage": {s: statistics.median(1e3 * r[s] / n for r in per_repeat) for s in STAGES}}


def rank_agreement(costs: dict, recost: RunDefaultCost, count: int, seed: int) -> dict:
    """Spearman of latency and energy between each chunking in `costs` (label -> EngineCost)
    and run's default chunking, over the same random mappings."""
    candidates = random_candidates(next(iter(costs.values())), count, seed)
    default = [recost(analog)[0] for analog in candidates]
    result = {"mappings": count}
    for label, cost in costs.items():
        figures = [cost(analog) for analog in candidates]
        for field in ("latency_ns", "energy_pj"):
            rho = spearmanr([getattr(c, field) for c in figures], [getattr(c, field) for c in default]).statistic
            result[f"{label}_spearman_{field.split('_')[0]}"] = float(rho)
    return result


def bench_config(name: str, n_candidates: int, repeats: int, spearman_mappings: int) -> dict:
    graph = build_graph("gpt2", "prefill", seq=128)
    hw = load_hw(name)
    cost = EngineCost(graph, hw)
    t0 = time.process_time()
    cost(random_candidates(cost, 1, seed=10_000)[0])
    first_ms = (time.process_time() - t0) * 1e3
    revisited = random_candidates(cost, n_candidates, seed=0)
    base = random_candidates(cost, 1, seed=20_000)[0]
    cost(base)
    kinds = {
        "fresh": [time_candidates(cost, random_candidates(cost, n_candidates, seed=1 + r)) for r in range(repeats)],
        "neighbours": [time_candidates(cost, neighbours(cost, base, n_candidates, seed=r)) for r in range(repeats)],
    }
    time_candidates(cost, revisited)  # fills the caches
    kinds["revisited"] = [time_candidates(cost, revisited) for _ in range(repeats)]
    result = {"config": name, "workload": "gpt2 prefill 128 tokens, one chunk", "repeats": repeats,
              "first_eval_cpu_ms": first_ms,
              "tasks_all_digital": int(cost.lowerer.lower(cost.mapping(frozenset())).n_tasks),
              **{kind: summarise(runs, len(revisited) if kind == "revisited" else n_candidates)
                 for kind, runs in kinds.items()}}
    result["per_s"] = result["fresh"]["per_s"]
    if spearman_mappings:
        recost = RunDefaultCost("gpt2", "prefill", hw, seq=128)
        chunk = search_chunk_tokens("gpt2", hw, recost)
        costs = {"one_chunk": cost}
        if chunk is not None:
            costs[f"search_chunks_of_{chunk}"] = EngineCost(build_graph("gpt2", "prefill", seq=128, chunk_tokens=chunk), hw)
        result["search_chunk_tokens"] = chunk
        result["rank_agreement_with_run_default"] = rank_agreement(costs, recost, spearman_mappings, seed=30_000)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    parser.add_argument("--candidates", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--spearman", type=int, default=200, metavar="N",
                        help="random mappings for the rank agreement with run's default chunking (0: skip)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated presets")
    args = parser.parse_args()
    results = []
    for name in args.configs.split(","):
        r = bench_config(name, args.candidates, args.repeats, args.spearman)
        results.append(r)
        for kind in ("fresh", "neighbours", "revisited"):
            k = r[kind]
            stages = ", ".join(f"{s} {v:.2f}" for s, v in k["median_cpu_ms_by_stage"].items())
            print(f"{r['config']:>14} {kind:>10}: {k['median_cpu_ms_per_eval']:.2f} CPU-ms/eval "
                  f"(per_s {k['per_s']:.0f}; {stages} ms; wall {k['wall_per_s']:.0f}/s)", flush=True)
        agreement = r.get("rank_agreement_with_run_default")
        if agreement:
            rhos = ", ".join(f"{key.replace('_spearman_', ' ')} {value:.3f}" for key, value in agreement.items()
                             if "_spearman_" in key)
            print(f"{r['config']:>14} Spearman against run's default chunking over {agreement['mappings']} "
                  f"mappings: {rhos}", flush=True)
    if args.json:
        write_json_atomic(args.json, {"benchmark": "mapping_eval", "results": results})


if __name__ == "__main__":
    main()
