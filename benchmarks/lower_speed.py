"""Lowering size and speed: tasks per token and seconds to lower at one-token granularity.

Workload: GPT-2 small prefill on analog_fabric, all-analog, `chunk_tokens=1`, for each
sequence length: tasks per token (by kind) and the median seconds of `Lowerer(graph,
hw).lower(mapping)` from a fresh Lowerer (what `aimcsim run` pays). Also the mapping-search
inner loop: median ms to re-lower GPT-2 small prefill of 128 tokens (whole sequence per op)
on hermes64 with a Lowerer that is reused, for seeded random analog/digital candidates.

    python benchmarks/lower_speed.py [--json F] [--seq 128 1024] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from simulator.analysis.search import EngineCost
from simulator.commands.common import write_json_atomic
from simulator.engine.lower import Lowerer
from simulator.engine.taskgraph import TASK_KINDS
from simulator.hw.loader import load_hw
from simulator.mapping.place import map_workload
from workloads.registry import build_graph


def bench_one_token_chunks(seq: int, repeats: int) -> dict:
    hw = load_hw("analog_fabric")
    graph = build_graph("gpt2", "prefill", seq=seq, chunk_tokens=1)
    mapping = map_workload(graph, hw, "all-analog")
    seconds, tg = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        tg = Lowerer(graph, hw).lower(mapping)
        seconds.append(time.perf_counter() - t0)
    per_kind = np.bincount(tg.task_kind, minlength=len(TASK_KINDS)) / seq
    return {"workload": f"gpt2 prefill {seq} tokens, chunk_tokens=1", "config": "analog_fabric",
            "tasks": int(tg.n_tasks), "edges": int(tg.pred_idx.shape[0]), "tasks_per_token": tg.n_tasks / seq,
            "tasks_per_token_by_kind": {k: float(v) for k, v in zip(TASK_KINDS, per_kind) if v},
            "median_lower_s": statistics.median(seconds), "repeats": repeats}


def bench_search_relowering(candidates: int, repeats: int) -> dict:
    graph = build_graph("gpt2", "prefill", seq=128)
    cost = EngineCost(graph, load_hw("hermes64"))
    eligible = [p.name for p in graph.projections if cost.tiles(p.name) <= cost.hw.analog.tiles]
    rng = np.random.default_rng(0)
    mappings = []
    while len(mappings) < candidates:
        analog = frozenset(n for n in eligible if rng.random() < 0.5)
        if cost.tile_capacity() is None or sum(cost.tiles(n) for n in analog) <= cost.tile_capacity():
            mappings.append(cost.mapping(analog))
    for mapping in mappings:  # warm the fragment cache, as a search does after its first round
        cost.lowerer.lower(mapping)
    per_lower_ms = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for mapping in mappings:
            cost.lowerer.lower(mapping)
        per_lower_ms.append(1e3 * (time.perf_counter() - t0) / candidates)
    return {"workload": "gpt2 prefill 128 tokens, whole sequence per op", "config": "hermes64",
            "candidates": candidates, "median_ms_per_lower": statistics.median(per_lower_ms), "repeats": repeats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    parser.add_argument("--seq", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--candidates", type=int, default=40)
    args = parser.parse_args()
    chunked = [bench_one_token_chunks(seq, args.repeats) for seq in args.seq]
    for r in chunked:
        print(f"{r['workload']}: {r['tasks_per_token']:.0f} tasks/token ({r['tasks']} tasks, {r['edges']} edges), "
              f"lowering {r['median_lower_s']:.2f} s")
    search = bench_search_relowering(args.candidates, args.repeats)
    print(f"search inner loop ({search['config']}, {search['workload']}): "
          f"{search['median_ms_per_lower']:.2f} ms per re-lowering")
    if args.json:
        write_json_atomic(args.json, {"benchmark": "lower_speed", "one_token_chunks": chunked,
                                      "search": search})


if __name__ == "__main__":
    main()
