"""`aimcsim train`: analog in-memory training on pulsed devices (Analog SGD, Tiki-Taka,
residual learning) against FP SGD, on least squares with a known optimum or 8x8 digits."""
from __future__ import annotations

import dataclasses
import sys

import numpy as np

from simulator.commands.common import (
    MAX_SEEDS, bounded_int, check_outputs, finite_float, write_json_atomic,
)
from simulator.atomic import HDF5, JSON, PLOT
from simulator.errors import UserError
from simulator.hw.schema import PulsedDeviceConfig

TASKS = ("lsq", "digits")
DEFAULT_EPOCHS = {"lsq": 20, "digits": 20}
MAX_EPOCHS = 100_000
MAX_PULSE_BITS = 4096  # pulse-train bit length; published arrays use 1..255


def add_parser(sub) -> None:
    from simulator.analog.pulsed import PULSED_MODELS
    from simulator.train.algorithms import ALGORITHMS
    p = sub.add_parser("train", help="analog in-memory training on pulsed devices",
                       description=__doc__.split("\n")[0])
    p.add_argument("--device", default="soft_bounds",
                   help=f"pulsed device model(s), comma separated, or all: {', '.join(PULSED_MODELS)} "
                        "(default soft_bounds)")
    p.add_argument("--algorithm", default="fp,sgd,tiki-taka,residual",
                   help=f"comma separated: {', '.join(ALGORITHMS)} (default all four)")
    p.add_argument("--task", default="lsq", help="lsq (least squares, known optimum) | digits (default lsq)")
    p.add_argument("--hw", default=None, help="take analog.device.pulsed from this hardware config")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="pulsed-device parameter, e.g. --param up_down=0.2 (repeatable)")
    p.add_argument("--seeds", type=bounded_int(MAX_SEEDS), default=3, help="seeds 0..N-1 (default 3)")
    p.add_argument("--epochs", type=bounded_int(MAX_EPOCHS), default=None, help="default 20")
    p.add_argument("--lr", type=finite_float("--lr", 0.0, above=True), default=None,
                   help="learning rate (default 0.01 lsq, 0.05 digits)")
    p.add_argument("--transfer-lr", type=finite_float("--transfer-lr", 0.0), default=0.05,
                   help="Tiki-Taka/residual transfer rate (default 0.05)")
    p.add_argument("--transfer-every", type=bounded_int(MAX_EPOCHS), default=1,
                   help="steps between column transfers (default 1)")
    p.add_argument("--gamma", type=finite_float("--gamma"), default=0.5, help="residual: W = C + gamma A (default 0.5)")
    p.add_argument("--read-noise", type=finite_float("--read-noise", 0.0), default=0.01,
                   help="transfer read noise std, device units (default 0.01)")
    p.add_argument("--bl", type=bounded_int(MAX_PULSE_BITS), default=31, help="pulse-train bit length (default 31)")
    p.add_argument("--update", default="stochastic", help="stochastic | expected (default stochastic)")
    p.add_argument("--jobs", type=bounded_int(64), default=1,
                   help="runs in parallel processes (default 1; results do not depend on it)")
    p.add_argument("--json", metavar="FILE", help="write all runs as JSON")
    p.add_argument("--h5", metavar="FILE", help="write the curves as HDF5")
    p.add_argument("--plot", metavar="FILE", help="loss curves and weight trajectories (.png, .svg, .pdf)")
    p.set_defaults(func=run)


def _choices(text: str, valid: tuple[str, ...], flag: str) -> list[str]:
    values = list(valid) if text == "all" else [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in valid]
    if bad or not values:
        raise UserError(f"{flag} {text}: expected one of {', '.join(valid)} (comma separated) or all")
    return values


def device_config(args, model: str) -> PulsedDeviceConfig:
    """The pulsed device: --hw's analog.device.pulsed (or the defaults), then --param, checked."""
    from simulator.analog.pulsed import check_pulsed
    base = PulsedDeviceConfig()
    if args.hw:
        from simulator.hw.loader import load_hw
        base = load_hw(args.hw).analog.device.pulsed
    fields = {f.name: f for f in dataclasses.fields(PulsedDeviceConfig)}
    changes = {"model": model}
    for item in args.param:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or key not in fields or key == "model":
            valid = ", ".join(k for k in fields if k != "model")
            raise UserError(f"--param {item}: expected KEY=VALUE with KEY one of {valid}")
        try:
            changes[key] = float(text)
        except ValueError:
            raise UserError(f"--param {item}: expected a number, got {text!r}") from None
    cfg = dataclasses.replace(base, **changes)
    check_pulsed(cfg, key="--param")
    return cfg


def run(args) -> int:
    from simulator.analog.pulsed import PULSED_MODELS
    from simulator.train.algorithms import ALGORITHMS, TrainSettings
    from simulator.train.tile import PulseSettings
    if args.task not in TASKS:
        raise UserError(f"--task {args.task}: expected one of {', '.join(TASKS)}")
    check_outputs(("--json", args.json, JSON), ("--h5", args.h5, HDF5), ("--plot", args.plot, PLOT))
    models = _choices(args.device, PULSED_MODELS, "--device")
    algorithms = _choices(args.algorithm, ALGORITHMS, "--algorithm")
    devices = {model: device_config(args, model) for model in models}
    lr = args.lr if args.lr is not None else (0.01 if args.task == "lsq" else 0.05)
    settings = TrainSettings(lr=lr, transfer_every=args.transfer_every, transfer_lr=args.transfer_lr,
                             gamma=args.gamma, read_noise=args.read_noise)
    pulses = PulseSettings(bl=args.bl, mode=args.update)
    epochs = args.epochs or DEFAULT_EPOCHS[args.task]
    summary = train_grid(args.task, devices, algorithms, pulses, settings, list(range(args.seeds)), epochs,
                         jobs=args.jobs)
    print(format_table(summary))
    if args.json:
        write_json_atomic(args.json, summary)
    if args.h5:
        write_training_h5(summary, args.h5)
    if args.plot:
        from simulator.train.plots import plot_training
        plot_training(summary, args.plot)
    return 0


def train_grid(task, devices: dict, algorithms, pulses, settings, seeds, epochs, jobs: int = 1) -> dict:
    """Every device x algorithm x seed; FP SGD runs once per seed (it has no device). Each
    run is seeded by itself alone, so `jobs` parallel processes give the same results."""
    from tqdm import tqdm
    runs: dict = {m: {a: [] for a in algorithms} for m in devices}
    fp_model = next(iter(devices))  # FP SGD does not depend on the device: run it once per seed
    jobs_list = [(task, m, a, devices[m], pulses, settings, s, epochs) for m in devices for a in algorithms
                 for s in seeds if a != "fp" or m == fp_model]
    with tqdm(total=len(jobs_list) * epochs, desc=f"train {task}", unit="epoch", file=sys.stderr,
              disable=None) as bar:
        if jobs == 1:
            results = [_run_job(*job, progress=lambda: bar.update(1)) for job in jobs_list]
        else:
            results = _run_parallel(jobs_list, jobs, lambda: bar.update(epochs))
    done = {(job[1], job[2], job[6]): result for job, result in zip(jobs_list, results)}
    for model in devices:
        for algorithm in algorithms:
            for seed in seeds:
                runs[model][algorithm].append(done[(fp_model if algorithm == "fp" else model, algorithm, seed)])
    return {"task": task, "epochs": epochs, "seeds": list(seeds), "bl": pulses.bl, "update": pulses.mode,
            "settings": dataclasses.asdict(settings),
            "devices": {m: dataclasses.asdict(cfg) for m, cfg in devices.items()},
            "runs": runs, "table": _table(task, runs)}


def _run_job(task, model, algorithm, device, pulses, settings, seed, epochs, progress=None) -> dict:
    from simulator.train.digits import run_digits
    from simulator.train.lsq import run_lsq
    runner = run_lsq if task == "lsq" else run_digits
    result = runner(algorithm, device, pulses, settings, seed, epochs=epochs, progress=progress)
    return _jsonable(dataclasses.asdict(result))


def _worker_signals() -> None:
    """Workers leave Ctrl-C to the parent, which stops them with SIGTERM; the default
    SIGTERM action (not the CLI's handler, inherited by fork) ends them without tracebacks."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _run_parallel(jobs_list, jobs: int, finished) -> list:
    import multiprocessing
    pool = multiprocessing.get_context("fork").Pool(min(jobs, len(jobs_list)), initializer=_worker_signals)
    try:
        pending = [pool.apply_async(_run_job, job) for job in jobs_list]
        results = []
        for job in pending:
            results.append(job.get())
            finished()
        pool.close()
        return results
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _table(task: str, runs: dict) -> list[dict]:
    rows = []
    for model, by_algorithm in runs.items():
        for algorithm, results in by_algorithm.items():
            if task == "lsq":
                final = [r["averaged_error"] for r in results]
                predicted = [r["predicted_error"] for r in results if r["predicted_error"] is not None]
            else:
                final = [r["test_accuracy"][-1] for r in results]
                predicted = []
            rows.append({"device": model, "algorithm": algorithm, "mean": float(np.mean(final)),
                         "std": float(np.std(final, ddof=1)) if len(final) > 1 else 0.0,
                         "predicted": float(np.mean(predicted)) if predicted else None,
                         "pulses": float(np.mean([r["pulses"] for r in results]))})
    return rows


def format_table(summary: dict) -> str:
    lsq = summary["task"] == "lsq"
    metric = "|W-W_opt|/|W_opt| (time-avg)" if lsq else "test accuracy"
    lines = [f"{summary['task']}: {metric}, mean +- std over {len(summary['seeds'])} seeds, "
             f"{summary['epochs']} epochs, BL {summary['bl']}, {summary['update']} updates",
             f"{'device':<14} {'algorithm':<10} {'mean':>8} {'std':>8}" + (f" {'theory':>8}" if lsq else "")
             + f" {'pulses':>12}"]
    for row in summary["table"]:
        theory = f" {row['predicted']:>8.4f}" if lsq and row["predicted"] is not None else (" " * 9 if lsq else "")
        lines.append(f"{row['device']:<14} {row['algorithm']:<10} {row['mean']:>8.4f} {row['std']:>8.4f}"
                     f"{theory} {row['pulses']:>12.4g}")
    return "\n".join(lines)


def write_training_h5(summary: dict, path: str) -> None:
    import h5py

    from simulator.atomic import atomic_output
    with atomic_output(path, ".h5") as tmp, h5py.File(tmp, "w") as f:
        f.attrs["task"] = summary["task"]
        f.attrs["epochs"] = summary["epochs"]
        for model, by_algorithm in summary["runs"].items():
            for algorithm, results in by_algorithm.items():
                group = f.create_group(f"{model}/{algorithm}")
                for key in ("losses", "error_curve", "test_accuracy"):
                    if key in results[0]:
                        group.create_dataset(key, data=np.array([r[key] for r in results]))
                if "trajectory" in results[0]:
                    group.create_dataset("trajectory", data=np.array([r["trajectory"] for r in results]))
                group.create_dataset("seeds", data=np.array([r["seed"] for r in results]))
                group.create_dataset("pulses", data=np.array([r["pulses"] for r in results]))
