"""Figures of the analysis commands (matplotlib Agg): sensitivity bars and the Pareto front.

Files are written next to their destination and renamed, so a failed plot leaves nothing.
"""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

from simulator.atomic import atomic_output  # noqa: E402
from simulator.errors import UserError  # noqa: E402


def plot_profile(profile: dict, path: str) -> None:
    """Analog-alone and digital-alone degradation per projection at the horizon, ranked."""
    entries = profile["projections"]
    x = range(len(entries))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.22 * len(entries) + 2), 4.5))
    ax.bar([i - 0.2 for i in x], [e["analog_alone_delta"] for e in entries], width=0.4,
           yerr=[e["std"] for e in entries], label="analog alone (rest FP)", color="tab:red")
    ax.bar([i + 0.2 for i in x], [e["digital_alone_delta"] for e in entries], width=0.4,
           label="digital alone (rest analog)", color="tab:blue")
    ax.set_xticks(list(x), [e["name"].replace("transformer.", "") for e in entries],
                  rotation=90, fontsize=7)
    ax.set_ylabel(f"delta {profile['metric']} at t = {profile['times_s'][-1]:g} s")
    ax.set_title(f"sensitivity profile (FP {profile['metric']} {profile['fp']:.3f}, "
                 f"{profile['seeds']} seeds)")
    ax.legend()
    save_figure(fig, path)


def plot_pareto(search: dict, path: str) -> None:
    """Latency and energy against degradation for the budget sweep and the reference mappings."""
    points = search["pareto"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, key, label in ((axes[0], "latency_ns", "latency (ns)"), (axes[1], "energy_pj", "energy (pJ)")):
        for kind, marker in (("verified", "o"), ("proxy", "x")):
            chosen = [p for p in points if p["delta_kind"] == kind]
            if chosen:
                ax.scatter([p["delta"] for p in chosen], [p[key] for p in chosen], marker=marker,
                           label=f"MILP, {kind} delta")
        front = sorted((p for p in points if p["on_front"]), key=lambda p: p["delta"])
        ax.plot([p["delta"] for p in front], [p[key] for p in front], "k--", lw=0.8, label="front")
        for name in ("greedy", "all_analog", "all_digital"):
            ref = search[name]
            if "latency_ns" in ref:
                ax.scatter([ref.get("verified_delta", 0.0)], [ref[key]], marker="s", label=name)
        ax.axvline(search["budget"], color="grey", lw=0.8, ls=":")
        ax.set_xlabel(f"delta {search['metric']} at t = {search['t_s']:g} s")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{search['model']} on {search['hw']}: objective {search['objective']}")
    save_figure(fig, path)


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
            fig.savefig(tmp, format=ext, dpi=120)
    finally:
        plt.close(fig)
