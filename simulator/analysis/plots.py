"""Figures of the analysis commands (matplotlib Agg): sensitivity bars, the Pareto front, sweeps.

Conventions, so every figure reads without the source: axes labelled with units in human
scale (us/ms, uJ/mJ, drift times as "1 y"), integer keys on integer ticks at their values,
legend entries sorted by value and placed outside the data. Files are written next to
their destination and renamed (simulator/atomic.py), so a failed plot leaves nothing.
"""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
from matplotlib.ticker import FixedLocator, NullLocator  # noqa: E402

from simulator.atomic import atomic_output  # noqa: E402
from simulator.errors import UserError  # noqa: E402

TIME_UNITS_NS = (("s", 1e9), ("ms", 1e6), ("us", 1e3), ("ns", 1.0))
ENERGY_UNITS_PJ = (("J", 1e12), ("mJ", 1e9), ("uJ", 1e6), ("nJ", 1e3), ("pJ", 1.0))
DRIFT_UNITS_S = (("y", 365 * 86400.0), ("mo", 30 * 86400.0), ("d", 86400.0), ("h", 3600.0),
                 ("min", 60.0), ("s", 1.0))
LEGEND_OUTSIDE = dict(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize="small")


def unit_for(values, units) -> tuple[str, float]:
    """The largest unit in which the largest |value| is >= 1: (name, scale)."""
    top = max((abs(v) for v in values), default=0.0)
    for name, scale in units:
        if top >= scale:
            return name, scale
    return units[-1]


def drift_label(t_s: float) -> str:
    """Human drift time: 0 -> "0 s", 3600 -> "1 h", 31536000 -> "1 y", 5400 -> "1.5 h"."""
    if t_s == 0:
        return "0 s"
    for name, scale in DRIFT_UNITS_S:
        if t_s >= scale:
            return f"{t_s / scale:.3g} {name}"
    return f"{t_s:.3g} s"


def seeds_label(count: int) -> str:
    return f"{count} seed" if count == 1 else f"{count} seeds"


def plot_profile(profile: dict, path: str) -> None:
    """Analog-alone and digital-alone degradation per projection at the horizon, ranked."""
    entries = profile["projections"]
    x = range(len(entries))
    fig, ax = plt.subplots(figsize=(max(7.0, 0.22 * len(entries) + 4), 4.8))
    ax.bar([i - 0.2 for i in x], [e["analog_alone_delta"] for e in entries], width=0.4,
           yerr=[e["std"] for e in entries], label="analog alone (rest FP)", color="tab:red")
    ax.bar([i + 0.2 for i in x], [e["digital_alone_delta"] for e in entries], width=0.4,
           label="digital alone (rest analog)", color="tab:blue")
    ax.set_xticks(list(x), [e["name"].replace("transformer.", "") for e in entries],
                  rotation=90, fontsize=7)
    ax.set_xlim(-0.7, len(entries) - 0.3)
    ax.axhline(0.0, color="black", lw=0.6)
    ax.set_xlabel("projection, most sensitive first (ranked by analog alone)")
    ax.set_ylabel(f"change in {profile['metric']} vs FP at t = {drift_label(profile['times_s'][-1])}")
    ax.set_title(f"sensitivity profile of {profile.get('model', 'the model')} "
                 f"(FP {profile['metric']} {profile['fp']:.3f}, {seeds_label(profile['seeds'])}; "
                 "error bars: std over seeds)", fontsize=10)
    ax.legend(**LEGEND_OUTSIDE)
    save_figure(fig, path)


_FRONT_KEY = {"latency_ns": "on_latency_front", "energy_pj": "on_energy_front"}
_REFERENCE_STYLE = {"greedy": ("s", "tab:green"), "all_analog": ("^", "tab:red"), "all_digital": ("v", "tab:blue")}


def plot_pareto(search: dict, path: str) -> None:
    """Latency and energy against the verified degradation of every mapping the search
    measured; each panel's non-dominated front as a step line, the chosen mapping starred."""
    points = search["pareto"]["verified"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, key, label, scale in ((axes[0], "latency_ns", "latency (us)", 1e-3),
                                  (axes[1], "energy_pj", "energy (uJ)", 1e-6)):
        rest = [p for p in points if not p[_FRONT_KEY[key]]]
        ax.scatter([p["delta"] for p in rest], [p[key] * scale for p in rest], s=12, color="0.7",
                   label=f"verified, dominated ({len(rest)})")
        front = sorted((p for p in points if p[_FRONT_KEY[key]]), key=lambda p: p["delta"])
        ax.step([p["delta"] for p in front], [p[key] * scale for p in front], where="post", color="k", lw=1.0)
        ax.scatter([p["delta"] for p in front], [p[key] * scale for p in front], s=18, color="k",
                   label=f"Pareto front ({len(front)})")
        for name, (marker, colour) in _REFERENCE_STYLE.items():
            ref = search[name]
            if "latency_ns" in ref:
                ax.scatter([ref.get("verified_delta", 0.0)], [ref[key] * scale], marker=marker, s=60,
                           facecolors="none", edgecolors=colour, linewidths=1.5, label=name.replace("_", " "))
        ax.scatter([search["verified_delta"]], [search[key] * scale], marker="*", s=200, color="gold",
                   edgecolors="k", zorder=5, label=f"chosen ({search['source']})")
        ax.axvline(search["budget"], color="grey", lw=0.8, ls=":", label=f"budget {search['budget']:g}")
        ax.set_xscale("symlog", linthresh=max(search["budget"], 1e-3))
        deltas = [p["delta"] for p in points]
        ax.set_xlim(min(deltas) - 0.2 * search["budget"], max(deltas) * 1.6)  # room for the end markers
        horizon = (f"{search['t_s'] / 31536000:g} y" if search["t_s"] >= 31536000 else f"{search['t_s']:g} s")
        ax.set_xlabel(f"verified delta {search['metric']} at t = {horizon} (symlog)")
        values = [p[key] for p in points if p[key] > 0]
        log_y = bool(values) and max(values) > 10 * min(values)  # e.g. re-programming rounds vs none
        if log_y:
            ax.set_yscale("log")
        ax.set_ylabel(label.replace(")", ", log scale)") if log_y else label)
        ax.grid(alpha=0.3, which="both" if log_y else "major")
    axes[0].legend(fontsize=7)
    chunk = search.get("chunk_tokens")
    timed = f"{search.get('phase', '')} {search.get('tokens', '')} tokens, " + (
        "one chunk" if chunk is None else f"chunks of {chunk}")
    fig.suptitle(f"{search['model']} on {search['hw']}: objective {search['objective']}, "
                 f"{len(points)} verified mappings ({timed})")
    save_figure(fig, path)


def plot_sweep(points: list[dict], axes, png_path: str) -> None:
    """Latency, energy (and accuracy at the last drift time) against each swept key.

    One panel column per key with more than one value; one line per combination of the
    other keys' values, the legend sorted by those values.
    """
    swept = [(key, list(values)) for key, values in axes if len(values) > 1] or \
        [(key, list(values)) for key, values in axes]
    done = [p for p in points if p["status"] == "ok"]
    metrics = [("latency_ns", "latency", TIME_UNITS_NS), ("energy_pj", "energy", ENERGY_UNITS_PJ)]
    if any("accuracy" in p for p in done):
        metric = next(p["accuracy"]["metric"] for p in done if "accuracy" in p)
        last_t = next(p["accuracy"]["t_s"][-1] for p in done if "accuracy" in p)
        metrics.append(("accuracy", f"{metric} at t = {drift_label(last_t)}", None))
    fig, grid = plt.subplots(len(metrics), len(swept), squeeze=False,
                             figsize=(5.5 * len(swept) + 1.5, 3.2 * len(metrics)))
    for col, (key, values) in enumerate(swept):
        others = [k for k, _ in swept if k != key]
        for row, (metric, label, units) in enumerate(metrics):
            axis = grid[row][col]
            unit, scale = (None, 1.0) if units is None else unit_for([_metric(p, metric) for p in done], units)
            for series_label, series in _series(done, key, values, others):
                xs = [p["overrides"][key] if _numeric(values) else values.index(p["overrides"][key])
                      for p in series]
                axis.plot(xs, [_metric(p, metric) / scale for p in series], marker="o", label=series_label)
            _key_ticks(axis, values)
            axis.set_xlabel(key)
            axis.set_ylabel(label if unit is None else f"{label} ({unit})")
            if units is not None:  # values are scaled to a unit: no 1e7 offset above the axis
                axis.ticklabel_format(axis="y", useOffset=False, style="plain")
            if metric == "accuracy":
                fp = next(p["accuracy"]["fp"] for p in done if "accuracy" in p)
                axis.axhline(fp, color="gray", linestyle="--", linewidth=1, label="FP (all digital)")
                axis.legend(title=", ".join(others) or None, **LEGEND_OUTSIDE)
            elif row == 0 and len(axis.get_lines()) > 1:
                axis.legend(title=", ".join(others), **LEGEND_OUTSIDE)
    save_figure(fig, png_path)


def _key_ticks(axis, values) -> None:
    """Ticks exactly at the swept values (so integer keys never get 6.5), log x for wide ranges."""
    if not _numeric(values):
        axis.set_xticks(range(len(values)), [str(v) for v in values])
        return
    if min(values) > 0 and max(values) / min(values) >= 10:
        axis.set_xscale("log", base=2 if all(isinstance(v, int) for v in values) else 10)
    axis.xaxis.set_major_locator(FixedLocator(sorted(values)))
    axis.xaxis.set_minor_locator(NullLocator())
    axis.set_xticklabels([f"{v:g}" for v in sorted(values)])


def _series(points, key, values, other_keys):
    """Points grouped by the values of the other swept keys (sorted), each sorted along `key`."""
    groups: dict[tuple, list] = {}
    for point in points:
        groups.setdefault(tuple(point["overrides"].get(k) for k in other_keys), []).append(point)
    for combo in sorted(groups, key=_sort_key):
        label = ", ".join(f"{v}" for v in combo) or None
        along = (lambda p: p["overrides"][key]) if _numeric(values) else \
            (lambda p: values.index(p["overrides"][key]))
        yield label, sorted(groups[combo], key=along)


def _sort_key(combo: tuple):
    """Numbers by value (64 < 512 < 1024), everything else by its text."""
    return tuple((0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, str(v))
                 for v in combo)


def _metric(point: dict, metric: str) -> float:
    return point["accuracy"]["mean"][-1] if metric == "accuracy" else point[metric]


def _numeric(values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def save_figure(fig, path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    ext = os.path.splitext(path)[1].lstrip(".").lower()
    if ext not in ("png", "svg", "pdf"):
        raise UserError(f"{path}: plot format must be .png, .svg or .pdf")
    if not os.path.isdir(folder):
        raise UserError(f"{path}: folder {folder} does not exist")
    try:
        with atomic_output(path, "." + ext) as tmp:
            fig.tight_layout()
            fig.savefig(tmp, format=ext, dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
