"""Figures of a training comparison: loss curves, and (least squares) the trajectories of a
few weights against their optimum and their device's symmetric point."""
from __future__ import annotations

import numpy as np

from simulator.atomic import atomic_output

COLOURS = {"fp": "black", "sgd": "tab:red", "tiki-taka": "tab:blue", "residual": "tab:green"}


def _mean_and_spread(ax, x, curves, colour, label) -> None:
    """The mean over seeds as a line, +- one standard deviation as a band (with 2+ seeds)."""
    mean = curves.mean(axis=0)
    ax.plot(x, mean, color=colour, label=label)
    if len(curves) > 1:
        spread = curves.std(axis=0, ddof=1)
        ax.fill_between(x, mean - spread, mean + spread, color=colour, alpha=0.15, lw=0)


def plot_training(summary: dict, path: str) -> None:
    """summary: the `aimcsim train` JSON (task, runs grouped by device then algorithm)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    devices = list(summary["runs"])
    lsq = summary["task"] == "lsq"
    fig, axes = plt.subplots(len(devices), 2, figsize=(11, 3.4 * len(devices)), squeeze=False)
    for row, device in enumerate(devices):
        by_algorithm = summary["runs"][device]
        loss_ax, right_ax = axes[row]
        for algorithm, runs in by_algorithm.items():
            colour = COLOURS.get(algorithm, None)
            key = "error_curve" if lsq else "losses"
            curves = np.array([run[key] for run in runs])
            epochs = np.arange(curves.shape[1]) + (0 if lsq else 1)  # lsq: from the start; digits: per epoch
            _mean_and_spread(loss_ax, epochs, curves, colour, algorithm)
            if lsq:
                trajectory = np.array(runs[0]["trajectory"])
                for k in range(trajectory.shape[1]):
                    right_ax.plot(np.arange(trajectory.shape[0]), trajectory[:, k], color=colour,
                                  label=algorithm if k == 0 else None, lw=1.2)
            else:
                acc = np.array([run["test_accuracy"] for run in runs])
                _mean_and_spread(right_ax, np.arange(1, acc.shape[1] + 1), acc, colour, algorithm)
        if lsq:
            analog = [a for a in by_algorithm if a != "fp"] or list(by_algorithm)
            run0 = by_algorithm[analog[0]][0]  # its symmetric points: those of the weight array
            for k, (opt, sp) in enumerate(zip(run0["tracked_optimum"], run0["tracked_symmetric"])):
                right_ax.axhline(opt, color="grey", ls="--", lw=0.8, label="optimum" if k == 0 else None)
                if sp is not None and np.isfinite(sp):  # per device: d2d variation moves it
                    right_ax.axhline(sp, color="tab:orange", ls=":", lw=1.0,
                                     label="symmetric point" if k == 0 else None)
            loss_ax.set_yscale("log")
            loss_ax.set_ylabel("|W - W_opt| / |W_opt| (end of epoch)")
            right_ax.set_ylabel("weight (device units)")
            right_ax.set_title(f"{device}: 4 largest weights (seed {run0['seed']})", fontsize=9)
        else:
            loss_ax.set_yscale("log")
            loss_ax.set_ylabel("training cross-entropy")
            right_ax.set_ylabel("test accuracy")
            right_ax.set_title(f"{device}: test accuracy (mean +- std over seeds)", fontsize=9)
        loss_ax.set_title(f"{device}: {'relative weight error' if lsq else 'loss'} (mean +- std over seeds)",
                          fontsize=9)
        loss_ax.set_xlabel("epoch")
        right_ax.set_xlabel("epoch")
        loss_ax.legend(fontsize=7)
        right_ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    suffix = "." + path.rsplit(".", 1)[-1]
    with atomic_output(path, suffix) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
