"""`aimcsim program`: program-and-verify cost per tile against tolerance, the programmed
conductances' error beside the fitted PCM polynomial, and (with --model) the accuracy of a
model whose analog weights were programmed that way."""
from __future__ import annotations

import copy
import dataclasses
import sys

import numpy as np

from simulator.commands.common import (
    MAX_SEEDS, MAX_TOKENS, add_hw_args, bounded_int, check_max_tokens, check_outputs, load_hw_arg,
    load_model_checked, write_json_atomic,
)
from simulator.atomic import HDF5, JSON, PLOT
from simulator.errors import UserError

DEFAULT_TOLERANCES = "0.05,0.02,0.01,0.005"


def add_parser(sub) -> None:
    p = sub.add_parser("program", help="program-and-verify: time, energy and accuracy vs tolerance",
                       description=__doc__.split("\n")[0])
    add_hw_args(p, default="hermes64")
    p.add_argument("--tolerance", default=DEFAULT_TOLERANCES,
                   help=f"verify tolerance(s) as fractions of g_max, comma separated (default {DEFAULT_TOLERANCES})")
    p.add_argument("--model", default=None,
                   help="also program this model's Linear weights and score it (gpt2-pydoc, minilm, a folder)")
    p.add_argument("--seeds", type=bounded_int(MAX_SEEDS), default=1, help="programming realisations (default 1)")
    p.add_argument("--max-tokens", type=bounded_int(MAX_TOKENS), default=None, help="LMs: score the first N held-out tokens")
    p.add_argument("--json", metavar="FILE", help="write the sweep as JSON")
    p.add_argument("--h5", metavar="FILE", help="write the sweep as HDF5")
    p.add_argument("--plot", metavar="FILE", help="tolerance vs time vs accuracy (.png, .svg, .pdf)")
    p.set_defaults(func=run)


def parse_tolerances(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or not all(0 < v < 1 for v in values):
        raise UserError(f"--tolerance {text}: expected fractions of g_max in (0, 1), comma separated, e.g. 0.02,0.01")
    return values


def with_tolerance(hw, tolerance: float):
    programming = dataclasses.replace(hw.analog.programming, model="verify", tolerance=tolerance)
    return dataclasses.replace(hw, analog=dataclasses.replace(hw.analog, programming=programming))


def run(args) -> int:
    from simulator.analog import programming
    tolerances = parse_tolerances(args.tolerance)
    check_outputs(("--json", args.json, JSON), ("--h5", args.h5, HDF5), ("--plot", args.plot, PLOT))
    hw = load_hw_arg(args)
    loaded = None
    if args.model:
        from simulator.accuracy.evaluate import projection_names
        from simulator.commands.memory import check_seeds_memory
        loaded = load_model_checked(args.model)
        check_max_tokens(args.max_tokens, loaded)
        check_seeds_memory(loaded, projection_names(loaded.model), args.seeds)  # the reference points
    rows = []
    for tolerance in tolerances:
        hw_tol = with_tolerance(hw, tolerance)
        print(f"tolerance {tolerance:g}: programming a {hw.analog.rows}x{hw.analog.cols} tile", file=sys.stderr)
        targets = programming.sample_tile_targets_uS(hw_tol.analog)  # the tile the timing model charges
        result = programming.sample_tile_programming(hw_tol.analog)
        used = targets > 0
        row = {"tolerance": tolerance, "tile": dataclasses.asdict(programming.tile_cost(result)),
               "error_vs_pcm": programming.error_versus_pcm((result.g_uS - targets)[used], targets[used],
                                                            hw.analog.device.g_max_uS)}
        if loaded is not None:
            row.update(_model_sweep_point(loaded, hw_tol, args.seeds, args.max_tokens))
        rows.append(row)
    summary = {"hw": hw.name, "rows": hw.analog.rows, "cols": hw.analog.cols, "model": args.model,
               "programming": dataclasses.asdict(hw.analog.programming),
               "device": dataclasses.asdict(hw.analog.device.pulsed), "sweep": rows}
    if loaded is not None:
        summary["reference"] = _reference_points(loaded, hw, args.seeds, args.max_tokens)
    print(format_sweep(summary))
    if args.json:
        write_json_atomic(args.json, summary)
    if args.h5:
        write_program_h5(summary, args.h5)
    if args.plot:
        plot_sweep(summary, args.plot)
    return 0


def _programmed_model(loaded, hw, seed: int):
    """A copy of the model whose Linear weights are the program-and-verify results, and
    the model's total programming time/energy (tile after tile) and tile count."""
    from tqdm import tqdm

    from simulator.accuracy.evaluate import projection_names
    from simulator.analog import programming
    model = copy.deepcopy(loaded.model)
    names = projection_names(model)
    time_us = energy_nj = 0.0
    tiles = 0
    for name in tqdm(names, desc=f"program-and-verify (seed {seed})", file=sys.stderr, disable=None):
        linear = model.get_submodule(name)
        weight = linear.weight.detach().cpu().numpy()
        done = programming.program_weight(weight, hw.analog, seed * 7919 + names.index(name))
        linear.weight.data.copy_(_as_tensor(done.weight))
        time_us += sum(t.time_us for t in done.tiles)
        energy_nj += sum(t.energy_nj for t in done.tiles)
        tiles += len(done.tiles)
    return dataclasses.replace(loaded, model=model), names, time_us, energy_nj, tiles


def _as_tensor(values):
    import torch
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))


def _ideal_device_hw(hw):
    """hw with an exact device: the programmed weights carry the programming error, the
    periphery (DAC, ADC, output noise) stays as configured."""
    device = dataclasses.replace(hw.analog.device, model="ideal")
    return dataclasses.replace(hw, analog=dataclasses.replace(hw.analog, device=device))


def _model_sweep_point(loaded, hw, seeds: int, max_tokens: int | None) -> dict:
    from simulator.accuracy.evaluate import evaluate_accuracy
    values, times, energies = [], [], []
    for seed in range(seeds):
        programmed, names, time_us, energy_nj, tiles = _programmed_model(loaded, hw, seed)
        result = evaluate_accuracy(programmed, _ideal_device_hw(hw), {n: "analog" for n in names}, [0.0],
                                   [seed], max_tokens=max_tokens)
        values.append(result.results[0]["mean"])
        times.append(time_us)
        energies.append(energy_nj)
    return {"metric": result.metric, "fp": result.fp, "value_mean": float(np.mean(values)),
            "value_std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, "values": values,
            "model_program_time_s": float(np.mean(times)) / 1e6, "model_program_energy_mj": float(np.mean(energies)) / 1e6,
            "tiles_programmed": tiles}


def _reference_points(loaded, hw, seeds: int, max_tokens: int | None) -> dict:
    """The same model with exact weights on the ideal-device tiles, and with the configured
    device's own (polynomial) programming noise at t = 0."""
    from simulator.accuracy.evaluate import evaluate_accuracy, projection_names
    targets = {n: "analog" for n in projection_names(loaded.model)}
    exact = evaluate_accuracy(loaded, _ideal_device_hw(hw), targets, [0.0], list(range(seeds)), max_tokens=max_tokens)
    configured = evaluate_accuracy(loaded, hw, targets, [0.0], list(range(seeds)), max_tokens=max_tokens)
    return {"metric": exact.metric, "fp": exact.fp, "exact_weights": exact.results[0]["mean"],
            f"{hw.analog.device.model}_model": configured.results[0]["mean"]}


def format_sweep(summary: dict) -> str:
    lines = [f"program-and-verify on {summary['hw']} ({summary['rows']}x{summary['cols']} tiles, "
             f"{summary['device']['model']} device)",
             f"{'tolerance':>9} {'tile us':>9} {'tile uJ':>9} {'pulses/dev':>10} {'rounds/row':>10} "
             f"{'converged':>9} {'err std uS':>10}" + (f" {'metric':>10} {'model s':>8}" if summary["model"] else "")]
    for row in summary["sweep"]:
        tile = row["tile"]
        spread = np.average([b["std_uS"] for b in row["error_vs_pcm"]], weights=[b["devices"] for b in row["error_vs_pcm"]])
        line = (f"{row['tolerance']:>9g} {tile['time_us']:>9.1f} {tile['energy_nj'] / 1e3:>9.2f} "
                f"{tile['pulses_per_device']:>10.1f} {tile['iterations_per_row']:>10.2f} "
                f"{tile['converged_fraction']:>9.4f} {spread:>10.3f}")
        if summary["model"]:
            line += f" {row['value_mean']:>10.4f} {row['model_program_time_s']:>8.3f}"
        lines.append(line)
    if summary.get("reference"):
        ref = summary["reference"]
        lines.append(f"{ref['metric']}: FP {ref['fp']:.4f}; exact weights on these tiles {ref['exact_weights']:.4f}; "
                     + ", ".join(f"{k} {v:.4f}" for k, v in ref.items() if k.endswith("_model")))
    return "\n".join(lines)


def write_program_h5(summary: dict, path: str) -> None:
    import h5py

    from simulator.atomic import atomic_output
    with atomic_output(path, ".h5") as tmp, h5py.File(tmp, "w") as f:
        f.attrs["hw"] = summary["hw"]
        f.create_dataset("tolerance", data=np.array([r["tolerance"] for r in summary["sweep"]]))
        for key in ("time_us", "energy_nj", "pulses_per_device", "iterations_per_row", "converged_fraction"):
            f.create_dataset(f"tile/{key}", data=np.array([r["tile"][key] for r in summary["sweep"]]))
        if summary["model"]:
            f.attrs["model"] = summary["model"]
            for key in ("value_mean", "value_std", "model_program_time_s", "model_program_energy_mj"):
                f.create_dataset(f"model/{key}", data=np.array([r[key] for r in summary["sweep"]]))


def _log_percent_axis(ax) -> None:
    from matplotlib.ticker import FormatStrFormatter, NullFormatter
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_sweep(summary: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from simulator.atomic import atomic_output
    tolerances = np.array([r["tolerance"] for r in summary["sweep"]])
    tile_ms = np.array([r["tile"]["time_us"] for r in summary["sweep"]]) / 1e3
    panels = 2 if summary["model"] else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 3.8), squeeze=False)
    ax = axes[0, 0]
    ax.plot(tolerances * 100, tile_ms, "o-", color="tab:blue", label="time per tile")
    _log_percent_axis(ax)
    ax.set_xticks(tolerances * 100)
    ax.set_xlabel("verify tolerance (% of g_max)")
    ax.set_ylabel("program time per tile (ms)", color="tab:blue")
    energy = ax.twinx()
    energy.plot(tolerances * 100, [r["tile"]["energy_nj"] / 1e3 for r in summary["sweep"]], "s--", color="tab:red",
                label="energy per tile")
    ax.legend(handles=ax.get_lines() + energy.get_lines(), fontsize=7, loc="upper right")
    energy.set_ylabel("program energy per tile (uJ)", color="tab:red")
    ax.set_title(f"{summary['hw']}: {summary['rows']}x{summary['cols']} tile, {summary['device']['model']}", fontsize=9)
    if summary["model"]:
        ax2 = axes[0, 1]
        values = np.array([r["value_mean"] for r in summary["sweep"]])
        spread = np.array([r["value_std"] for r in summary["sweep"]])
        ax2.errorbar(tolerances * 100, values, yerr=spread, fmt="o-", color="tab:green", label="program-and-verify")
        ref = summary["reference"]
        ax2.axhline(ref["fp"], color="black", ls="--", lw=0.8, label="FP")
        ax2.axhline(ref["exact_weights"], color="grey", ls=":", lw=1.0, label="exact weights, same periphery")
        for key, value in ref.items():
            if key.endswith("_model"):
                ax2.axhline(value, color="tab:orange", ls="-.", lw=1.0, label=key.replace("_", " ") + " (t=0)")
        for t, v, r in zip(tolerances, values, summary["sweep"]):
            ax2.annotate(f"{r['model_program_time_s']:.2f} s", (t * 100, v), fontsize=7,
                         textcoords="offset points", xytext=(4, 4))
        _log_percent_axis(ax2)
        ax2.set_xticks(tolerances * 100)
        ax2.set_xlabel("verify tolerance (% of g_max)")
        ax2.set_ylabel(f"{summary['model']} {ref['metric']}")
        ax2.set_title("accuracy at t = 0 (labels: whole-model programming time)", fontsize=9)
        ax2.legend(fontsize=7)
    fig.tight_layout()
    with atomic_output(path, "." + path.rsplit(".", 1)[-1]) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)

