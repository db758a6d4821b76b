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
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{search['model']} on {search['hw']}: objective {search['objective']}, "
                 f"{len(points)} verified mappings")
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
