"""Resumable sweeps over hardware config keys: a cartesian grid run on Dask, kept in HDF5.

Each grid point is a dict of dotted config overrides (`{"analog.tiles": 128, ...}`). It is
evaluated in a worker (timing, optionally accuracy) and written by the main process, the
only writer of the HDF5 file, as soon as it finishes. A point's group is keyed by a stable
hash of its overrides and counts as finished only once its `done` attribute is set, after
all its data, so a run killed at any moment resumes by skipping exactly the finished points
(a half-written group is dropped and recomputed). Points whose mapping does not fit the
config are recorded as failures with the one-line reason, not raised.

Accuracy depends on fewer keys than timing: only on what the functional tile model reads
(`ACCURACY_KEYS`) and on which projections the mapping puts on tiles. Points that agree on
both share one accuracy evaluation (a sweep over tiles x adc_bits evaluates accuracy once per
adc_bits): the first such point evaluates it, the others run timing only and are stored
with its result once it is in.

File layout: root attribute `settings` (JSON of everything but the axes; a resume with other
settings is refused), and `points/<key>` groups with attributes `overrides` (JSON), `status`
(`ok` | `failed`), `error`, the scalar figures of `FIGURES`, a sub-group
`energy_breakdown_pj`, and with accuracy the datasets `accuracy/{t_s,mean,std,values}`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, field

import h5py
import numpy as np

from simulator.errors import UserError
from simulator.hw.loader import load_hw

FORMAT = "aimcsim-sweep/1"
FIGURES = ("latency_ns", "energy_pj", "tokens_per_s", "tiles_used")
# The HwConfig fields the functional tile model reads (simulator/analog/layer.py, periphery.py,
# device.py); tests/test_scaling_laws.py checks that the other tile keys leave outputs unchanged.
ACCURACY_KEYS = ("analog.rows", "analog.cols", "analog.dac_bits", "analog.adc_bits", "analog.device",
                 "analog.periphery")


@dataclass(frozen=True)
class SweepSpec:
    """Everything that defines a sweep: the base config, the axes, and what each point runs."""

    hw: str
    axes: tuple[tuple[str, tuple], ...]  # (dotted key, values), in the order given
    workload: str
    phase: str | None = None
    mapping: str = "all-analog"
    engine: str = "fast"
    graph_kw: dict = field(default_factory=dict)  # batch, seq, new_tokens, chunk_tokens
    accuracy_seeds: int = 0  # 0: timing only
    accuracy_times_s: tuple[float, ...] = ()
    accuracy_max_tokens: int | None = None  # LMs: score only this many held-out tokens
    accuracy_model: str | None = None  # model whose accuracy is measured (None: the workload)

    def settings(self) -> dict:
        """The fixed part of the sweep; points of one file must share it to be comparable."""
        settings = asdict(self)
        del settings["axes"]
        return settings

    def points(self) -> list[dict]:
        return expand_grid(self.axes)


def expand_grid(axes) -> list[dict]:
    """Cartesian product of the axes, first axis slowest, as override dicts."""
    keys = [key for key, _ in axes]
    return [dict(zip(keys, combo)) for combo in itertools.product(*(values for _, values in axes))]


def accuracy_fingerprint(hw) -> str:
    """Points with the same fingerprint (and analog projections) have the same accuracy."""
    values = {}
    for key in ACCURACY_KEYS:
        value = hw
        for part in key.split("."):
            value = getattr(value, part)
        values[key] = asdict(value) if dataclasses.is_dataclass(value) else value
    return json.dumps(values, sort_keys=True)


def point_key(overrides: dict) -> str:
    """Stable across runs and machines: a hash of the canonical JSON of the overrides."""
    canonical = json.dumps(overrides, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def evaluate_point(spec: SweepSpec, overrides: dict) -> dict:
    """Run one grid point; a config the mapping cannot use is a failed point, not an error."""
    # The timing and accuracy stacks are imported where points run, so that the main
    # process (store, progress, plots) never loads torch and the workload models.
    from simulator.run import simulate_workload

    hw = load_hw(spec.hw, overrides)
    try:
        sim = simulate_workload(hw, spec.workload, spec.phase, spec.mapping,
                                engine=spec.engine, **spec.graph_kw)
        accuracy = (_evaluate_accuracy(spec, hw, sim.mapping.targets())
                    if spec.accuracy_seeds else None)
    except UserError as exc:
        return {"status": "failed", "error": str(exc)}
    figures = sim.report.to_dict()
    result = {"status": "ok", **{name: figures[name] for name in FIGURES},
              "energy_breakdown_pj": dict(figures["energy_breakdown_pj"]),
              "analog_projections": sorted(name for name, target in sim.mapping.targets().items()
                                           if target == "analog")}
    if accuracy is not None:
        result["accuracy"] = accuracy
    return result


def _evaluate_accuracy(spec: SweepSpec, hw, targets: dict[str, str]) -> dict:
    import torch

    from simulator.accuracy.evaluate import evaluate_accuracy
    from workloads.registry import load_model

    torch.set_num_threads(1)  # workers share the machine's cores
    result = evaluate_accuracy(load_model(spec.accuracy_model or spec.workload), hw, targets,
                               list(spec.accuracy_times_s), spec.accuracy_seeds,
                               max_tokens=spec.accuracy_max_tokens)
    return {"metric": result.metric, "fp": result.fp,
            "t_s": [entry["t_s"] for entry in result.results],
            "mean": [entry["mean"] for entry in result.results],
            "std": [entry["std"] for entry in result.results],
            "values": [list(entry["values"]) for entry in result.results]}


class SweepStore:
    """The sweep's HDF5 file, opened for appending; only the main process writes it."""

    def __init__(self, path: str, settings: dict):
        self.path = path
        try:
            self._file = h5py.File(path, "a")
        except OSError as exc:
            raise UserError(f"{path}: cannot open as a sweep file ({exc}); "
                            "delete it or choose another --out") from None
        self._check_settings(settings)
        self._points = self._file.require_group("points")
        self._drop_unfinished()

    def _check_settings(self, settings: dict) -> None:
        wanted = json.dumps(settings, sort_keys=True)
        settings = json.loads(wanted)  # compare as stored: tuples become lists
        if "settings" not in self._file.attrs:
            self._file.attrs["format"] = FORMAT
            self._file.attrs["settings"] = wanted
            from simulator.report.h5 import describe_file
            describe_file(self._file, "aimcsim sweep: one group per grid point under points/, its "
                                      "overrides (JSON), status and figures (latency_ns, energy_pj, ...) "
                                      "as attributes")
            return
        if self._file.attrs.get("format") != FORMAT:
            raise UserError(f"{self.path}: not an aimcsim sweep file; choose another --out")
        stored = json.loads(self._file.attrs["settings"])
        changed = sorted(k for k in set(stored) | set(settings) if stored.get(k) != settings.get(k))
        if changed:
            raise UserError(f"{self.path}: made by a sweep with other settings ({', '.join(changed)} "
                            "differ); choose another --out to keep both")

    def _drop_unfinished(self) -> None:
        for key in [k for k, group in self._points.items() if not group.attrs.get("done", False)]:
            del self._points[key]
        self._file.flush()

    def finished_keys(self) -> set[str]:
        return set(self._points)

    def write_point(self, overrides: dict, result: dict) -> None:
        """All data first, `done` last, then flush: a kill in between leaves no finished point."""
        key = point_key(overrides)
        if key in self._points:
            del self._points[key]
        group = self._points.create_group(key)
        group.attrs["overrides"] = json.dumps(overrides, sort_keys=True)
        group.attrs["status"] = result["status"]
        group.attrs["error"] = result.get("error", "")
        if result["status"] == "ok":
            for name in FIGURES:
                group.attrs[name] = result[name]
            breakdown = group.create_group("energy_breakdown_pj")
            for component, energy_pj in result["energy_breakdown_pj"].items():
                breakdown.attrs[component] = energy_pj
            if "accuracy" in result:
                self._write_accuracy(group, result["accuracy"])
        group.attrs["done"] = True
        self._file.flush()

    @staticmethod
    def _write_accuracy(group, accuracy: dict) -> None:
        sub = group.create_group("accuracy")
        sub.attrs["metric"] = accuracy["metric"]
        sub.attrs["fp"] = accuracy["fp"]
        for name in ("t_s", "mean", "std", "values"):
            sub.create_dataset(name, data=np.asarray(accuracy[name], dtype=float))

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def read_points(path: str) -> list[dict]:
    """Every finished point of a sweep file as {overrides, status, error, figures...}."""
    with h5py.File(path, "r") as f:
        points = []
        for group in f["points"].values():
            point = {"overrides": json.loads(group.attrs["overrides"]),
                     "status": str(group.attrs["status"]), "error": str(group.attrs["error"])}
            if point["status"] == "ok":
                point.update({name: group.attrs[name].item() for name in FIGURES})
                point["energy_breakdown_pj"] = {k: float(v) for k, v in group["energy_breakdown_pj"].attrs.items()}
                if "accuracy" in group:
                    acc = group["accuracy"]
                    point["accuracy"] = {"metric": str(acc.attrs["metric"]), "fp": float(acc.attrs["fp"]),
                                         **{name: acc[name][()].tolist() for name in ("t_s", "mean", "std", "values")}}
            points.append(point)
    return points


@dataclass(frozen=True)
class SweepCounts:
    points: int
    skipped: int  # finished by an earlier run of the same sweep
    evaluated: int
    failed: int


def run_sweep(spec: SweepSpec, out_path: str, submit_all, *, evaluate=evaluate_point,
              on_plan=None, on_point=None) -> SweepCounts:
    """Evaluate the unfinished points of `spec` and store each one as it finishes.

    `submit_all(evaluate, jobs)` takes `(spec, overrides)` pairs and yields `(overrides,
    result)` pairs in completion order (`run_on_dask(client)`, or `run_in_process`).
    Progress hooks: `on_plan(total, skipped)` once before any work, `on_point(overrides,
    result)` after each point is stored.
    """
    points = spec.points()
    fingerprints = {point_key(o): accuracy_fingerprint(load_hw(spec.hw, o)) for o in points}  # bad keys fail here
    with SweepStore(out_path, spec.settings()) as store:
        finished = store.finished_keys()
        todo = [overrides for overrides in points if point_key(overrides) not in finished]
        if on_plan is not None:
            on_plan(len(points), len(points) - len(todo))
        failed = 0

        def store_point(overrides, result):
            nonlocal failed
            result = {k: v for k, v in result.items() if k != "analog_projections"}
            store.write_point(overrides, result)
            failed += result["status"] != "ok"
            if on_point is not None:
                on_point(overrides, result)

        sharing = _AccuracySharing(spec, todo, fingerprints)
        for overrides, result in submit_all(evaluate, sharing.jobs()):
            for done_overrides, done_result in sharing.finished(overrides, result):
                store_point(done_overrides, done_result)
        retry = sharing.unresolved()
        for overrides, result in submit_all(evaluate, [(spec, o) for o in retry]):
            store_point(overrides, result)
    return SweepCounts(len(points), len(points) - len(todo), len(todo), failed)


class _AccuracySharing:
    """Which points evaluate accuracy, and which take it from an equal point.

    The first point of each accuracy fingerprint evaluates it; the others run timing
    only and wait for it. A waiting point whose analog projections differ from the
    evaluating point's (or whose evaluating point failed) is evaluated again in full.
    """

    def __init__(self, spec: SweepSpec, todo: list[dict], fingerprints: dict[str, str]):
        self._spec = spec
        self._todo = todo
        self._fingerprint = fingerprints
        self._leader: dict[str, str] = {}  # fingerprint -> point key of the point evaluating it
        if spec.accuracy_seeds:
            for overrides in todo:
                self._leader.setdefault(fingerprints[point_key(overrides)], point_key(overrides))
        self._leader_result: dict[str, dict] = {}  # fingerprint -> its leader's result
        self._waiting: dict[str, list] = {}  # fingerprint -> [(overrides, timing result)]
        self._retry: list[dict] = []

    def jobs(self) -> list[tuple[SweepSpec, dict]]:
        timing_only = dataclasses.replace(self._spec, accuracy_seeds=0, accuracy_times_s=())
        return [(self._spec if self._leads(o) or not self._spec.accuracy_seeds else timing_only, o)
                for o in self._todo]

    def _leads(self, overrides: dict) -> bool:
        key = point_key(overrides)
        return self._leader.get(self._fingerprint[key]) == key

    def finished(self, overrides: dict, result: dict):
        """The points that can be stored now that `overrides` finished."""
        if not self._spec.accuracy_seeds or result["status"] != "ok":
            return [(overrides, result)]
        fingerprint = self._fingerprint[point_key(overrides)]
        if not self._leads(overrides):
            if fingerprint not in self._leader_result:
                self._waiting.setdefault(fingerprint, []).append((overrides, result))
                return []
            return self._share(fingerprint, [(overrides, result)])
        self._leader_result[fingerprint] = result
        return [(overrides, result)] + self._share(fingerprint, self._waiting.pop(fingerprint, []))

    def _share(self, fingerprint: str, members: list) -> list:
        leader = self._leader_result[fingerprint]
        ready = []
        for overrides, result in members:
            if leader["status"] == "ok" and result["analog_projections"] == leader["analog_projections"]:
                ready.append((overrides, dict(result, accuracy=leader["accuracy"])))
            else:
                self._retry.append(overrides)
        return ready

    def unresolved(self) -> list[dict]:
        """Points to evaluate again with accuracy: no usable result to share."""
        for members in self._waiting.values():  # their leader failed
            self._retry.extend(overrides for overrides, _ in members)
        self._waiting = {}
        return self._retry


def run_in_process(evaluate, jobs):
    """Synchronous evaluation in this process, in grid order."""
    for spec, overrides in jobs:
        yield overrides, evaluate(spec, overrides)


def run_on_dask(client):
    """A `submit_all` that maps points onto a Dask client and yields them as they complete."""
    from distributed import as_completed

    def submit_all(evaluate, jobs):
        futures = {client.submit(evaluate, spec, overrides, pure=False,
                                 key=f"sweep-point-{point_key(overrides)}-{'a' if spec.accuracy_seeds else 't'}"):
                   overrides for spec, overrides in jobs}
        for future in as_completed(futures):
            yield futures[future], future.result()
    return submit_all


def plot_sweep(points: list[dict], axes, png_path: str) -> None:
    """Latency, energy (and accuracy) against each swept key; see simulator.analysis.plots."""
    from simulator.analysis.plots import plot_sweep as plot
    plot(points, axes, png_path)
