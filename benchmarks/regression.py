"""Regression benchmark: simulated latency and energy of fixed (preset, workload, phase) cases.

    python benchmarks/regression.py              # compare with the stored baselines, exit 1 on drift
    python benchmarks/regression.py --update     # re-record the baselines after an intended change
    python benchmarks/regression.py --json F     # also write the measured figures

The simulator is deterministic, so any move beyond the tolerance (default 0.1 %) is a
change in the timing or energy model (or in a preset) that a reviewer should see.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from simulator.atomic import atomic_output
from simulator.commands.common import write_json_atomic
from simulator.hw.loader import load_hw
from simulator.run import simulate_workload

BASELINE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "baselines", "regression.json")

# (case name, preset, workload, phase, graph keyword arguments, mapping)
CASES = (
    ("hermes64/gpt2/prefill128", "hermes64", "gpt2", "prefill", dict(seq=128), "all-analog"),
    ("hermes64/gpt2/decode8", "hermes64", "gpt2", "decode", dict(seq=64, new_tokens=8), "all-analog"),
    ("hermes64/gpt2-pydoc/prefill128", "hermes64", "gpt2-pydoc", "prefill", dict(seq=128), "all-analog"),
    ("alpine/mobilebert/encoder128", "alpine", "mobilebert", "encoder", dict(seq=128), "all-analog"),
    ("analog_fabric/gpt2/prefill128", "analog_fabric", "gpt2", "prefill", dict(seq=128), "all-analog"),
    ("analog_fabric/gpt2/decode16", "analog_fabric", "gpt2", "decode", dict(seq=128, new_tokens=16),
     "all-analog"),
    ("analog_fabric/mobilebert/encoder128", "analog_fabric", "mobilebert", "encoder", dict(seq=128),
     "all-analog"),
    # pipelined prefill (the CLI's auto chunking picks 2 tokens here; 8 keeps the case quick)
    ("analog_fabric/gpt2/prefill128-chunk8", "analog_fabric", "gpt2", "prefill", dict(seq=128, chunk_tokens=8),
     "all-analog"),
    ("analog_fabric/gpt2/decode32", "analog_fabric", "gpt2", "decode", dict(seq=128, new_tokens=32),
     "all-analog"),
    ("digital/gpt2/prefill128", "digital", "gpt2", "prefill", dict(seq=128), "all-digital"),
    ("digital/mobilebert/encoder128", "digital", "mobilebert", "encoder", dict(seq=128), "all-digital"),
)
TRACKED = ("latency_ns", "energy_pj")


def measure(cases=CASES) -> dict:
    figures = {}
    for name, preset, workload, phase, graph_kw, mapping in cases:
        result = simulate_workload(load_hw(preset), workload, phase, mapping, engine="fast",
                                   **graph_kw).report.to_dict()
        figures[name] = {key: result[key] for key in TRACKED}
        figures[name]["energy_breakdown_pj"] = result["energy_breakdown_pj"]
    return figures


def compare(measured: dict, baseline: dict, rel_tol: float) -> list[str]:
    """Human-readable lines for every tracked figure that moved beyond rel_tol."""
    problems = []
    for name, figures in measured.items():
        if name not in baseline:
            problems.append(f"{name}: no baseline (run with --update)")
            continue
        for key in TRACKED:
            old, new = baseline[name][key], figures[key]
            if abs(new - old) > rel_tol * abs(old):
                problems.append(f"{name}: {key} {old:.6g} -> {new:.6g} ({(new - old) / old:+.2%})")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--update", action="store_true", help="re-record the stored baselines")
    parser.add_argument("--tolerance", type=float, default=1e-3, help="relative tolerance (default 1e-3)")
    parser.add_argument("--json", metavar="FILE", help="write the measured figures as JSON")
    args = parser.parse_args(argv)

    measured = measure()
    for name, figures in measured.items():
        print(f"{name:<40} latency {figures['latency_ns'] / 1e3:12.3f} us"
              f"   energy {figures['energy_pj'] / 1e6:12.4f} uJ")
    if args.json:
        write_json_atomic(args.json, {"cases": measured, "tolerance": args.tolerance})
    if args.update:
        with atomic_output(BASELINE_PATH, ".json") as tmp, open(tmp, "w") as f:
            json.dump(measured, f, indent=2, sort_keys=True)  # sorted: reviewable baseline diffs
        print(f"baselines written to {BASELINE_PATH}")
        return 0
    with open(BASELINE_PATH) as f:
        baseline = json.load(f)
    problems = compare(measured, baseline, args.tolerance)
    for line in problems:
        print("REGRESSION", line)
    print("regression: OK" if not problems else f"regression: {len(problems)} figure(s) moved")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
