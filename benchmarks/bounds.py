"""Every simulated figure held against its analytical lower bound, on every preset.

    python benchmarks/bounds.py [--json F] [--hw NAME ...]

For GPT-2 small prefill (128 tokens, chunking chosen by `--chunk-tokens auto`) and decode
(32 tokens after a 128-token prompt), all-analog where the preset has tiles: the simulated
latency and energy, the bound of `simulator/report/bounds.py` (computed from the graph,
the mapping and the peak rates, not from the task graph), their ratio and the term that
binds. Where a ratio exceeds 3x it says where the simulated time goes (the critical path
by kind of work) and why the bound cannot see it.
"""
from __future__ import annotations

import argparse
import sys

from simulator.commands.common import write_json_atomic
from simulator.errors import UserError
from simulator.hw.loader import load_hw, preset_names
from simulator.report.table import format_energy_pj, format_time_ns
from simulator.run import simulate_workload

CASES = (
    ("prefill128", "prefill", dict(seq=128, chunk_tokens="auto")),
    ("decode32", "decode", dict(seq=128, new_tokens=32)),
)
RATIO_LIMIT = 3.0

# Why time on the critical path of each kind is above what the bound counts for it:
# first by the op kind that holds most of the path, then by the kind of work.
OP_GAP_REASONS = {
    "kv_read": "each layer's KV cache is read through the SRAM ports of the cores holding its heads "
               "(the K/V projection's reduction cores), layer after layer, while the bound reads it "
               "through every core's port at once",
    "linear_analog": "each analog projection's partial sums cross the mesh to its reduction cores and "
                     "are added there before the next layer can start, token after token, while the "
                     "bound's chain moves nothing and spreads the additions over every core",
    "softmax": "a layer's softmax runs on the cores holding its heads, while the bound spreads it over every core",
    "matmul": "a layer's QK^T and AV run on the cores holding its heads, while the bound spreads them over "
              "every core",
    "gelu": "a GELU runs on its projection's reduction cores, while the bound spreads it over every core",
}
GAP_REASONS = {
    "digital_compute": "digital ops run on the few cores of the projection they follow (its "
                       "reduction cores), one after another along the layers, while the bound "
                       "spreads each op over every core",
    "noc": "each message pays its hops and waits for links other messages hold; the bound counts "
           "only the partial sums through the busiest core's links and the mesh middle",
    "analog_mvm": "consecutive layers' MVMs wait for each other token by token, which the tile "
                  "term (busy time) does not see",
    "dram": "every DRAM access pays the access latency on the chain and queues on the one channel",
    "programming": "tiles are rewritten one program-and-verify pass at a time while the MVMs that "
                   "need them wait",
    "wait": "the schedule leaves the critical resource idle",
}
UNSPLIT_REASON = ("each digital op runs whole on one core (digital.split_ops: false), so the chunks of "
                  "a pipelined pass queue on it one after another and wait for each other's transfers, "
                  "while the bound's core term counts each core's work back to back")


def measure(presets: list[str]) -> list[dict]:
    rows = []
    for preset in presets:
        hw = load_hw(preset)
        mapping = "all-analog" if hw.analog.tiles else "all-digital"
        for case, phase, kw in CASES:
            try:
                report = simulate_workload(hw, "gpt2", phase, mapping, engine="fast", **kw).report
            except UserError as exc:
                rows.append({"preset": preset, "case": case, "error": str(exc)})
                print(_format_row(rows[-1]), flush=True)
                continue
            rows.append(_row(preset, case, report, split_ops=hw.digital.split_ops))
            print(_format_row(rows[-1]), flush=True)
    return rows


def _row(preset: str, case: str, report, split_ops: bool = True) -> dict:
    bound, path = report.bound, report.critical_path
    total = path["latency_cycles"] or 1
    shares = {name: cycles / total for name, cycles in path["by_category"].items() if cycles}
    top = max(shares, key=shares.get) if shares else "none"
    row = {
        "preset": preset, "case": case, "workload": report.workload,
        "latency_ns": report.latency_ns, "energy_pj": report.energy_pj,
        "bound_latency_ns": bound["latency_ns"], "bound_energy_pj": bound["energy_pj"],
        "latency_ratio": bound["latency_ratio"], "energy_ratio": bound["energy_ratio"],
        "binding": bound["binding"], "bound_latency_terms_ns": bound["latency_terms_ns"],
        "critical_path_shares": shares,
        "critical_path_op_shares": {name: cycles / total for name, cycles in path["by_op_kind"].items()},
        "static_energy_share": report.energy_breakdown_pj.get("static", 0.0) / report.energy_pj,
        "analog_projections": sum(1 for t in report.mapping.values() if t == "analog"),
        "split_ops": split_ops,
    }
    row["gap"] = _gap(row, top)
    return row


def _gap(row: dict, top: str) -> str:
    """Why a figure sits more than RATIO_LIMIT above its bound ('' when it does not)."""
    notes = []
    if row["latency_ratio"] and row["latency_ratio"] > RATIO_LIMIT:
        ops = row["critical_path_op_shares"]
        top_op = max(ops, key=ops.get) if ops else None
        text = f"latency: the critical path is {100 * row['critical_path_shares'][top]:.0f} % {top}"
        if top == "digital_compute" and not row["split_ops"]:
            text += f": {UNSPLIT_REASON}"
        elif top_op in OP_GAP_REASONS:
            text += f", {100 * ops[top_op]:.0f} % {top_op}: {OP_GAP_REASONS[top_op]}"
        else:
            text += f": {GAP_REASONS.get(top, '')}"
        notes.append(text)
    if row["energy_ratio"] and row["energy_ratio"] > RATIO_LIMIT:
        if row["static_energy_share"] > 0.5:
            notes.append(f"energy: {100 * row['static_energy_share']:.0f} % is static power, drawn over "
                         f"a latency {row['latency_ratio']:.1f}x its bound")
        else:
            notes.append("energy: dynamic work beyond the bound's minimum (bytes over more than one hop, "
                         "re-read weights, activations through SRAM)")
    return "; ".join(notes)


def _format_row(row: dict) -> str:
    if "error" in row:
        return f"{row['preset']:<14} {row['case']:<11} n/a: {row['error']}"
    line = (f"{row['preset']:<14} {row['case']:<11}"
            f" latency {format_time_ns(row['latency_ns']):>9} bound {format_time_ns(row['bound_latency_ns']):>9}"
            f" {row['latency_ratio']:6.2f}x ({row['binding']})"
            f"   energy {format_energy_pj(row['energy_pj']):>9} bound {format_energy_pj(row['bound_energy_pj']):>9}"
            f" {row['energy_ratio']:6.2f}x")
    return line + (f"\n{'':<27}gap: {row['gap']}" if row["gap"] else "")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", metavar="FILE", help="write every row as JSON")
    parser.add_argument("--hw", nargs="+", default=None, help="presets to run (default: every preset)")
    args = parser.parse_args(argv)
    rows = measure(args.hw or preset_names())
    over = [r for r in rows if "error" not in r and max(r["latency_ratio"], r["energy_ratio"]) > RATIO_LIMIT]
    print(f"{len(rows)} figures pairs, {len(over)} above {RATIO_LIMIT:g}x their bound (each with its gap above)")
    if args.json:
        write_json_atomic(args.json, {"ratio_limit": RATIO_LIMIT, "rows": rows})
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
