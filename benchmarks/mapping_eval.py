"""Inner-loop speed of the mapping search: one candidate = place + lower + fast engine + energy sum.

Workload: GPT-2 small, prefill of 128 tokens (whole sequence per op). For each config,
random candidate mappings (each eligible projection analog with probability 1/2, the
same seeded candidates for every repeat) are evaluated with a Lowerer built once, as in
`aimcsim search`. Reported: median ms per evaluation over the repeats (each repeat
times all candidates), its split into placement, lowering and scheduling, and
evaluations per second. The first evaluation (numba compilation, cold caches) is
excluded and reported separately.

    python benchmarks/mapping_eval.py [--json F] [--candidates 40] [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from simulator.analysis.search import EngineCost, schedule_cost
from simulator.commands.common import write_json_atomic
from simulator.engine import fast
from simulator.hw.loader import load_hw
from workloads.registry import build_graph

CONFIGS = ("hermes64", "analog_fabric")


def random_candidates(cost: EngineCost, count: int, seed: int) -> list[frozenset[str]]:
    eligible = [p.name for p in cost.graph.projections if cost.tiles(p.name) <= cost.hw.analog.tiles]
    rng = np.random.default_rng(seed)
    candidates = []
    while len(candidates) < count:
        analog = frozenset(n for n in eligible if rng.random() < 0.5)
        tiles = sum(cost.tiles(n) for n in analog)
        if cost.tile_capacity() is None or tiles <= cost.tile_capacity():
            candidates.append(analog)
    return candidates


def time_candidates(cost: EngineCost, candidates) -> dict[str, float]:
    """Seconds spent in each stage over all candidates."""
    spent = {"place": 0.0, "lower": 0.0, "simulate": 0.0}
    for analog in candidates:
        t0 = time.perf_counter()
        mapping = cost.mapping(analog)
        t1 = time.perf_counter()
        tg = cost.lowerer.lower(mapping)
        t2 = time.perf_counter()
        schedule_cost(tg, fast.simulate(tg))
        t3 = time.perf_counter()
        spent["place"] += t1 - t0
        spent["lower"] += t2 - t1
        spent["simulate"] += t3 - t2
    return spent


def bench_config(name: str, n_candidates: int, repeats: int) -> dict:
    graph = build_graph("gpt2", "prefill", seq=128)
    cost = EngineCost(graph, load_hw(name))
    candidates = random_candidates(cost, n_candidates, seed=0)
    t0 = time.perf_counter()
    cost(candidates[0])
    first_ms = (time.perf_counter() - t0) * 1e3
    per_repeat = [time_candidates(cost, candidates) for _ in range(repeats)]
    per_eval_ms = [1e3 * sum(r.values()) / n_candidates for r in per_repeat]
    median_ms = statistics.median(per_eval_ms)
    return {
        "config": name, "workload": "gpt2 prefill 128 tokens", "candidates": n_candidates,
        "repeats": repeats, "first_eval_ms": first_ms,
        "median_ms_per_eval": median_ms, "evals_per_s": 1e3 / median_ms,
        "median_ms_by_stage": {stage: statistics.median(1e3 * r[stage] / n_candidates for r in per_repeat)
                               for stage in ("place", "lower", "simulate")},
        "tasks_all_digital": int(cost.lowerer.lower(cost.mapping(frozenset())).n_tasks),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    parser.add_argument("--candidates", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    results = [bench_config(name, args.candidates, args.repeats) for name in CONFIGS]
    for r in results:
        stages = ", ".join(f"{k} {v:.2f}" for k, v in r["median_ms_by_stage"].items())
        print(f"{r['config']:>14}: {r['median_ms_per_eval']:.2f} ms/eval ({r['evals_per_s']:.0f}/s; "
              f"{stages} ms), first eval {r['first_eval_ms']:.0f} ms")
    if args.json:
        write_json_atomic(args.json, {"benchmark": "mapping_eval", "results": results})


if __name__ == "__main__":
    main()
