"""Human-readable report: an aligned text table in engineering units (ns/us/ms, pJ/nJ/uJ/mJ)."""
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


def _rows(rows: list[tuple[str, str]], indent: str = "  ") -> list[str]:
    width = max(len(label) for label, _ in rows)
    return [f"{indent}{label.ljust(width)}  {value}" for label, value in rows]


def format_report(report: Report) -> str:
    """The report as the CLI prints it: headline figures, energy breakdown, utilisation."""
    w = report.workload
    analog = sum(1 for target in report.mapping.values() if target == "analog")
    energy_pj = report.energy_pj
    per_token = energy_pj / w["tokens"] if w["tokens"] else 0.0
    lines = [f"{w['model']} {w['phase']} (batch {w['batch']}, {w['tokens']} tokens) on {report.hw['name']}"
             f"  [{report.engine} engine, {report.n_tasks:,} tasks]"]
    lines += _rows([
        ("latency", f"{format_time_ns(report.latency_ns)} ({report.latency_cycles:,} cycles)"),
        ("throughput", f"{report.tokens_per_s:,.0f} tokens/s"),
        ("energy", f"{format_energy_pj(energy_pj)} ({format_energy_pj(per_token)}/token)"),
        ("achieved", f"{achieved_tops(report.ops, report.latency_ns):,.2f} TOP/s, "
                     f"{achieved_tops_per_w(report.ops, energy_pj):,.2f} TOPS/W (ops = 2 x MACs)"),
        ("tiles used", f"{report.tiles_used}"),
        ("mapping", f"{analog} analog, {len(report.mapping) - analog} digital projections"),
    ])
    lines.append("energy breakdown")
    lines += _rows([(name, f"{format_energy_pj(pj):>10}  {100 * pj / energy_pj if energy_pj else 0.0:5.1f} %")
                    for name, pj in report.energy_breakdown_pj.items()])
    lines.append("utilisation (busy / available)")
    lines += _rows([(kind, f"{u['count']:>6} x  {100 * u['busy_fraction']:5.1f} %")
                    for kind, u in report.utilisation.items()])
    return "\n".join(lines)
