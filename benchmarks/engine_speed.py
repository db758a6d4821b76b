"""Speed of the two timing engines on one real task graph, measured side by side.

Workload: GPT-2 small prefill on analog_fabric (all analog), lowered once. Timed on
that task graph, each a median over its repeats:
  * bare simpy: one process running n_tasks request/timeout/release cycles on one
    simpy.Resource, the floor any simpy model pays per task;
  * the simpy engine (engine.des) and the fast engine (engine.fast, after a warm-up
    call that compiles or loads the numba cache).
The simpy runs take tens of seconds each, so they get fewer repeats (--simpy-repeats,
default 1) than the fast engine (--repeats, default 5).
`identical` checks that the two engines give equal start cycles.

The default is the issue's case: 1024 tokens in one-token chunks (4.29 M tasks).

    python benchmarks/engine_speed.py [--json F] [--tokens 1024] [--chunk-tokens 1]
                                      [--repeats 5] [--simpy-repeats 1]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import simpy

from simulator.commands.common import write_json_atomic
from simulator.engine import des, fast
from simulator.engine.lower import lower
from simulator.hw.loader import load_hw
from simulator.mapping.place import map_workload
from workloads.registry import build_graph

HW = "analog_fabric"


def bare_simpy_loop(n_tasks: int) -> None:
    """n_tasks request / 1-cycle timeout / release cycles on one resource."""
    env = simpy.Environment()
    unit = simpy.Resource(env)

    def worker():
        for _ in range(n_tasks):
            with unit.request() as granted:
                yield granted
                yield env.timeout(1)

    env.process(worker())
    env.run()


def median_seconds(run, repeats: int) -> tuple[float, object]:
    """Median wall time of `run()` over the repeats, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def measure(tokens: int, chunk_tokens: int, repeats: int, simpy_repeats: int) -> dict:
    hw = load_hw(HW)
    graph = build_graph("gpt2", "prefill", seq=tokens, chunk_tokens=chunk_tokens)
    tg = lower(graph, map_workload(graph, hw, "all-analog"), hw)
    fast.simulate(tg)  # compile (or load the cached compilation) outside the timing
    bare_s, _ = median_seconds(lambda: bare_simpy_loop(tg.n_tasks), simpy_repeats)
    simpy_s, reference = median_seconds(lambda: des.simulate(tg), simpy_repeats)
    fast_s, schedule = median_seconds(lambda: fast.simulate(tg), repeats)
    n = tg.n_tasks
    return {
        "workload": f"gpt2 prefill {tokens} tokens, chunk {chunk_tokens}, {HW}, all-analog",
        "n_tasks": n,
        "repeats": repeats,
        "simpy_repeats": simpy_repeats,
        "bare_simpy_s": bare_s,
        "bare_simpy_tasks_per_s": n / bare_s,
        "simpy_s": simpy_s,
        "simpy_tasks_per_s": n / simpy_s,
        "fast_s": fast_s,
        "fast_tasks_per_s": n / fast_s,
        "speedup": simpy_s / fast_s,
        "simpy_over_bare": simpy_s / bare_s,
        "identical": bool(np.array_equal(reference.start_cycles, schedule.start_cycles)),
    }


def format_table(result: dict) -> str:
    rows = [("bare simpy loop", result["bare_simpy_s"], result["bare_simpy_tasks_per_s"]),
            ("simpy engine", result["simpy_s"], result["simpy_tasks_per_s"]),
            ("fast engine", result["fast_s"], result["fast_tasks_per_s"])]
    lines = [f"{result['workload']}: {result['n_tasks']:,} tasks, median of {result['simpy_repeats']} "
             f"(simpy) and {result['repeats']} (fast) runs",
             f"  {'':16}  {'seconds':>9}  {'tasks/s':>12}"]
    lines += [f"  {name:16}  {seconds:9.3f}  {rate:12,.0f}" for name, seconds, rate in rows]
    lines.append(f"  speedup fast vs simpy: {result['speedup']:.0f}x;  simpy engine / bare simpy: "
                 f"{result['simpy_over_bare']:.2f};  identical start cycles: {result['identical']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--chunk-tokens", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5, help="fast engine runs")
    parser.add_argument("--simpy-repeats", type=int, default=1, help="bare simpy and simpy engine runs")
    args = parser.parse_args()
    result = measure(args.tokens, args.chunk_tokens, args.repeats, args.simpy_repeats)
    print(format_table(result))
    if args.json:
        write_json_atomic(args.json, result)


if __name__ == "__main__":
    main()
