"""Human-readable report: an aligned text table in engineering units (ns/us/ms, pJ/nJ/uJ/mJ, mW/W)."""
from __future__ import annotations

from simulator.report.build import Report
from simulator.report.ops import achieved_tops, achieved_tops_per_w

_TIME_UNITS_NS = (("s", 1e9), ("ms", 1e6), ("us", 1e3), ("ns", 1.0))
_ENERGY_UNITS_PJ = (("J", 1e12), ("mJ", 1e9), ("uJ", 1e6), ("nJ", 1e3), ("pJ", 1.0))


def _engineering(value: float, units) -> str:
    """Largest unit that keeps the number >= 1, three significant digits."""
    for name, scale in units:
        if abs(value) >= scale:
            return f"{value / scale:.3g} {name}"
    name, scale = units[-1]
    return f"{value / scale:.3g} {name}"


def format_time_ns(value_ns: float) -> str:
    return _engineering(value_ns, _TIME_UNITS_NS)


def format_energy_pj(value_pj: float) -> str:
    return _engineering(value_pj, _ENERGY_UNITS_PJ)


def format_power_mw(value_mw: float) -> str:
    return _engineering(value_mw, (("W", 1e3), ("mW", 1.0), ("uW", 1e-3)))


def _rows(rows: list[tuple[str, str]], indent: str = "  ") -> list[str]:
    width = max(len(label) for label, _ in rows)
    return [f"{indent}{label.ljust(width)}  {value}" for label, value in rows]


def workload_line(w: dict) -> str:
    """`gpt2 decode: 32 new tokens after a 128-token prompt, batch 1` and the like."""
    if w["phase"] == "decode":
        shape = f"{w.get('new_tokens', w['tokens'])} new tokens after a {w.get('prompt_tokens')}-token prompt"
    else:
        shape = f"{w.get('prompt_tokens') or w['tokens']} tokens"
        chunks, chunk_tokens = w.get("chunks"), w.get("chunk_tokens")
        if chunks and chunks > 1:
            shape += f" in {chunks} chunks of {chunk_tokens}"
        elif chunks == 1:
            shape += " in one chunk"
    return f"{w['model']} {w['phase']}: {shape}, batch {w['batch']}"


def _bound_note(report: Report, figure: str) -> str:
    bound = report.bound
    if not bound or not bound.get(f"{figure}_ratio"):
        return ""
    value = (format_time_ns(bound["latency_ns"]) if figure == "latency"
             else format_energy_pj(bound["energy_pj"]))
    binding = f", {bound['binding']}" if figure == "latency" else ""
    return f"   bound {value}{binding}: {bound[f'{figure}_ratio']:.2f}x"


def _sequence_rows(report: Report) -> list[tuple[str, str]]:
    """Per-sequence latency (first MVM to last task), which papers on pipelined fabrics quote."""
    seq = report.sequence_latency_ns
    if not seq:
        return []
    return [("per sequence", f"{format_time_ns(seq['first'])} first, {format_time_ns(seq['mean'])} mean, "
                             f"{format_time_ns(seq['max'])} max ({len(seq['per_sequence'])} sequences)")]


def format_report(report: Report) -> str:
    """The report as the CLI prints it: headline figures against their bounds, fallbacks,
    energy breakdown, bottleneck, memory, utilisation."""
    w = report.workload
    analog = sum(1 for target in report.mapping.values() if target == "analog")
    energy_pj = report.energy_pj
    per_token = energy_pj / w["tokens"] if w["tokens"] else 0.0
    lines = [f"{workload_line(w)} on {report.hw['name']}  [{report.engine} engine, {report.n_tasks:,} tasks]"]
    lines += _rows([
        ("latency", f"{format_time_ns(report.latency_ns)} ({report.latency_cycles:,} cycles)"
                    + _bound_note(report, "latency")),
        *_sequence_rows(report),
        ("throughput", f"{report.tokens_per_s:,.0f} tokens/s"),
        ("energy", f"{format_energy_pj(energy_pj)} ({format_energy_pj(per_token)}/token)"
                   + _bound_note(report, "energy")),
        ("achieved", f"{achieved_tops(report.ops, report.latency_ns):,.2f} TOP/s, "
                     f"{achieved_tops_per_w(report.ops, energy_pj):,.2f} TOPS/W (ops = 2 x MACs)"),
        ("tiles used", f"{report.tiles_used}"),
        ("mapping", f"{analog} analog, {len(report.mapping) - analog} digital projections"),
    ])
    if report.fallbacks and analog:
        lines += _fallback_lines(report.fallbacks)
    lines.append("energy breakdown")
    lines += _rows([(name, f"{format_energy_pj(pj):>10}  {100 * pj / energy_pj if energy_pj else 0.0:5.1f} %")
                    for name, pj in report.energy_breakdown_pj.items()])
    if report.static_power_mw:
        parts = ", ".join(f"{kind} {format_power_mw(mw)}" for kind, mw in report.static_power_mw.items() if mw)
        lines.append(f"  (static power, busy or idle: {parts or '0 mW'})")
    lines += _bottleneck_lines(report)
    lines += _programming_lines(report.programming)
    lines += _memory_lines(report.memory)
    lines.append("utilisation (busy / available)")
    lines += _rows([(kind, f"{u['count']:>6} x  {100 * u['busy_fraction']:5.1f} %")
                    for kind, u in report.utilisation.items()])
    return "\n".join(lines)


def _fallback_lines(fallbacks: dict[str, str], listed: int = 8) -> list[str]:
    """Each digital fallback and why; past `listed` of them, grouped by reason."""
    lines = [f"digital fallbacks ({len(fallbacks)})"]
    if len(fallbacks) <= listed:
        return lines + _rows(list(fallbacks.items()))
    by_reason: dict[str, list[str]] = {}
    for name, reason in fallbacks.items():
        by_reason.setdefault(reason, []).append(name)
    for reason, names in by_reason.items():
        more = f" and {len(names) - 2} more" if len(names) > 2 else ""
        lines.append(f"  {', '.join(names[:2])}{more}: {reason}")
    return lines


def _bottleneck_lines(report: Report) -> list[str]:
    path = report.critical_path
    if not path or not path.get("latency_cycles"):
        return []
    total = path["latency_cycles"]
    lines = [f"bottleneck (critical path, {path['n_tasks']:,} tasks)"]
    lines += _rows([(name, f"{format_time_ns(cycles * report.cycle_ns):>10}  {100 * cycles / total:5.1f} %")
                    for name, cycles in sorted(path["by_category"].items(), key=lambda kv: -kv[1]) if cycles])
    ops = sorted(path.get("by_op_kind", {}).items(), key=lambda kv: -kv[1])
    if ops:
        lines.append("  by op: " + ", ".join(f"{name} {100 * cycles / total:.1f} %" for name, cycles in ops[:6]))
    return lines


def _programming_lines(programming: dict) -> list[str]:
    if not programming or not programming.get("tile_programmings"):
        return []
    line = (f"programming: {programming['tile_programmings']:,} tile programmings, "
            f"{100 * programming['latency_share']:.1f} % of the latency (critical path), "
            f"{100 * programming['energy_share']:.1f} % of the energy; "
            f"{programming['writes_per_device_per_inference']:,} "
            f"write{'' if programming['writes_per_device_per_inference'] == 1 else 's'} per device per inference")
    if programming.get("inferences_to_wear_out"):
        line += (f", worn out after {programming['inferences_to_wear_out']:,.3g} inferences "
                 f"(endurance {programming['endurance_cycles']:,.3g} cycles)")
    return [line]


def _memory_lines(memory: dict) -> list[str]:
    """Bytes moved per level and SRAM occupancy per core, as the lowering recorded them."""
    if not memory:
        return []
    levels = memory["bytes_per_level"]
    lines = ["memory (bytes moved)"]
    lines += _rows([("sram", _format_bytes(levels["sram"])), ("dram", _format_bytes(levels["dram"])),
                    ("noc", f"{_format_bytes(levels['noc_byte_hops'])} x hops")])
    if memory.get("weight_streamed_bytes"):
        lines.append(f"  (digital weights streamed from DRAM: {_format_bytes(memory['weight_streamed_bytes'])})")
    if memory.get("program_bytes"):
        lines.append(f"  (weights read to reprogram tiles: {_format_bytes(memory['program_bytes'])})")
    resident = list(memory["sram_resident_bytes_per_core"].values())
    capacity = memory["sram_capacity_bytes"]
    if resident:
        peak = max(resident)
        lines.append(f"  SRAM resident per core: max {_format_bytes(peak)}, mean "
                     f"{_format_bytes(sum(resident) / len(resident))} of {_format_bytes(capacity)}"
                     f" ({100 * peak / capacity if capacity else 0.0:.0f} % at most)")
    return lines


def _format_bytes(nbytes: float) -> str:
    for name, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(nbytes) >= scale:
            return f"{nbytes / scale:.3g} {name}"
    return f"{nbytes:.0f} B"
