"""The adaptation comparison table: FP, analog without adapters, LoRA (chip-agnostic and
chip-specific) and AHWA, over drift times and chip realisations, from one command
(`aimcsim adapt --table DIR [--quick]`, see docs/adaptation.md).

Trains the adaptations (each writes its adapter file in DIR next to a checkpoint, so a
killed run resumes and a finished file is reused), scores every column on the same chips
with the numba inference kernels, and writes `table.json` and `table.md`.

* GPT-2: perplexity on the held-out text (`simulator.accuracy.evaluate.evaluate_accuracy`).
* Encoders: all LoRA sets on ONE programmed backbone (`simulator.adapt.backbone`), scored
  by embedding cosine per text domain and by the `source` task accuracy; besides the three
  adaptations, one more adapter set per task (distilled on the `docstrings` domain, and
  trained on the `source` task loss) shows several tasks sharing that backbone.

"No compensation" means no adapters (the config's global drift compensation stays on,
as in Li et al.).
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass, replace

from simulator.accuracy.metrics import mean_std
from simulator.adapt.files import load_adapters, model_fingerprint, save_adapters
from simulator.adapt.train import AdaptConfig, train
from simulator.errors import UserError

METHOD_COLUMNS = ("fp", "no_compensation", "lora_agnostic", "lora_specific", "hwa")
TASK_SETS = {"cosine:pydoc": "lora_agnostic", "cosine:docstrings": "lora_docstrings", "task:source": "lora_task"}
ISSUE_TIMES = "0,1h,1d,1w,1mo,1y,10y"


@dataclass(frozen=True)
class TableSettings:
    """What a table run trains and evaluates (the presets below; flags override fields)."""

    times: str = ISSUE_TIMES
    chips: int = 10
    steps: int = 60
    batch: int = 8
    seq: int = 128  # LMs: tokens per training window
    t_train: str = "1d"  # chip-specific adapters: drift time of the chips they train on
    max_tokens: int = 4096  # LMs: held-out tokens scored
    eval_sentences: int = 32  # encoders: held-out sentences per text domain
    domain_sets: bool = True  # encoders: also a set distilled on the `docstrings` domain
    seed: int = 0


FULL = TableSettings()
QUICK = TableSettings(times="0,1d,10y", chips=3, steps=20, batch=4, seq=64, max_tokens=1024, eval_sentences=12,
                      domain_sets=False)


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _adapt(loaded, hw, names, config: AdaptConfig, path: str, progress: bool, head=None) -> str:
    """Train unless `path` exists; returns the file."""
    if os.path.exists(path):
        _check_reusable(path, config)
        _log(f"reusing {path}")
        return path
    _log(f"training {os.path.basename(path)}: {config.method} {config.mode}, loss {config.loss}, "
         f"{config.steps} steps x {config.batch}, {config.sets} set(s)")
    started = time.perf_counter()
    result = train(loaded, hw, names, config, checkpoint=path + ".ckpt", progress=progress, head=head)
    meta = {**identity(config), "model": loaded.name, "fingerprint": model_fingerprint(loaded.model),
            "hw": hw.name, "targets": list(config.targets), "seconds": time.perf_counter() - started,
            "losses": result.losses}
    save_adapters(path, result.tensors, meta)
    if os.path.exists(path + ".ckpt"):
        os.unlink(path + ".ckpt")
    return path


IDENTITY_KEYS = ("method", "mode", "rank", "alpha", "chips", "t_train_s", "steps", "seed", "loss", "domain",
                 "batch", "seq", "lr")


def identity(config: AdaptConfig) -> dict:
    """The adapter-file metadata that must match for a finished file to be reused."""
    return {"method": config.method, "mode": config.mode, "rank": config.rank, "alpha": config.alpha,
            "chips": list(config.chips), "t_train_s": config.t_train_s, "steps": config.steps, "seed": config.seed,
            "loss": config.loss, "domain": config.domain, "batch": config.batch, "seq": config.seq,
            "lr": config.learning_rate}


def _check_reusable(path: str, config: AdaptConfig) -> None:
    meta, want = load_adapters(path).meta, identity(config)
    differ = [key for key in IDENTITY_KEYS if meta.get(key) != want[key]]
    if differ:
        raise UserError(f"{path}: trained with other settings ({differ[0]} {meta.get(differ[0])!r}, this table "
                        f"wants {want[differ[0]]!r}); delete it or use another --table folder")


def trainings(family: str, s: TableSettings, t_train_s: float) -> dict[str, AdaptConfig]:
    """The adapter sets a table needs, by column / set name."""
    common = AdaptConfig(steps=s.steps, batch=s.batch, seq=s.seq, seed=s.seed)
    plan = {"lora_agnostic": common,
            "lora_specific": replace(common, mode="specific", t_train_s=t_train_s, chips=tuple(range(s.chips))),
            "hwa": replace(common, method="hwa")}
    if family != "gpt2":
        if s.domain_sets:
            plan["lora_docstrings"] = replace(common, domain="docstrings")
        plan["lora_task"] = replace(common, loss="task")
    return plan


def _loss_summary(path: str) -> dict:
    meta = load_adapters(path).meta
    losses = meta.get("losses") or [float("nan")]
    tail = losses[-max(1, len(losses) // 10):]
    return {"first": losses[0], "last_tenth_mean": sum(tail) / len(tail), "steps": meta.get("steps"),
            "lr": meta.get("lr"), "seconds": meta.get("seconds")}


def compare(model: str, hw, out_dir: str, s: TableSettings, progress: bool = True) -> dict:
    """The table for `model` on `hw` (a HwConfig); adapter files go into `out_dir`."""
    from simulator.commands.accuracy import parse_duration_s, parse_times
    from workloads.registry import load_model

    started = time.perf_counter()
    times_s = parse_times(s.times)
    loaded = load_model(model)
    names = loaded.model.projection_names()
    head = None
    if loaded.family != "gpt2":
        from simulator.adapt.head import train_source_head
        head = train_source_head(loaded, s.seed)
    files = {key: _adapt(loaded, hw, names, config, os.path.join(out_dir, f"{key}.safetensors"), progress,
                         head if config.loss == "task" else None)
             for key, config in trainings(loaded.family, s, parse_duration_s(s.t_train)).items()}
    seeds = list(range(s.chips))
    table = {"model": loaded.name, "hw": hw.name, "seeds": seeds, "settings": asdict(s),
             "training": {key: _loss_summary(path) for key, path in files.items()},
             "trainable": {key: int(sum(t.numel() for t in load_adapters(p).tensors.values()))
                           for key, p in files.items()}}
    if loaded.family == "gpt2":
        table.update(_lm_columns(loaded, hw, names, files, times_s, seeds, s.max_tokens))
    else:
        table.update(_encoder_columns(loaded, hw, names, files, head, times_s, seeds, s.eval_sentences))
    table["seconds"] = time.perf_counter() - started
    return table


def _lm_columns(loaded, hw, names, files, times_s, seeds, max_tokens) -> dict:
    from simulator.accuracy.evaluate import evaluate_accuracy
    targets = {n: "analog" for n in names}

    def rows(result):
        return [{"t_s": r["t_s"], "mean": r["mean"], "std": r["std"], "values": r["values"]} for r in result.results]
    _log(f"evaluating no adapters on chips {seeds}")
    plain = evaluate_accuracy(loaded, hw, targets, times_s, seeds, max_tokens=max_tokens)
    columns = {"fp": [{"t_s": t, "mean": plain.fp, "std": 0.0, "values": [plain.fp]} for t in times_s],
               "no_compensation": rows(plain)}
    for key in METHOD_COLUMNS[2:]:
        _log(f"evaluating {key}")
        columns[key] = rows(evaluate_accuracy(loaded, hw, targets, times_s, seeds, max_tokens=max_tokens,
                                              adapters=load_adapters(files[key])))
    return {"metrics": {plain.metric: columns}, "eval_tokens": plain.eval_tokens}


def _encoder_columns(loaded, hw, names, files, head, times_s, seeds, per_domain) -> dict:
    from simulator.adapt.backbone import METRICS, score_sets, summarise
    sets = {"no_compensation": None, **{k: load_adapters(p) for k, p in files.items() if k.startswith("lora_")}}
    _log(f"programming chips {seeds} once; scoring {len(sets)} adapter sets + AHWA at {len(times_s)} times")
    result = score_sets(loaded, hw, names, sets, load_adapters(files["hwa"]), head, times_s, seeds, per_domain,
                        progress=lambda done, total, label, t_s: _log(f"scored {label} at t={t_s:g} s "
                                                                      f"({done}/{total})"))
    metrics = {}
    for metric in METRICS:
        columns = {"fp": [{"t_s": t, "mean": result["fp"][metric], "std": 0.0, "values": [result["fp"][metric]]}
                          for t in times_s]}
        for key in METHOD_COLUMNS[1:]:
            columns[key] = [summarise(entry, metric) for entry in result["scores"][key]]
        metrics[metric] = columns
    one_backbone = {metric: {"fp": result["fp"][metric],
                             "none": [summarise(e, metric) for e in result["scores"]["no_compensation"]],
                             "own_set": [summarise(e, metric) for e in result["scores"][key]], "set": key}
                    for metric, key in TASK_SETS.items() if key in result["scores"]}
    return {"metrics": metrics, "one_backbone": one_backbone, "eval_sentences_per_domain": per_domain,
            "all_sets": {label: [{"t_s": e["t_s"], **{m: mean_std(e[m]) for m in METRICS}} for e in entries]
                         for label, entries in result["scores"].items()}}


def _time_label(t_s: float) -> str:
    from simulator.commands.accuracy import format_time
    return format_time(t_s) if t_s else "0"


def _cell(entry: dict, digits: int) -> str:
    return f"{entry['mean']:.{digits}f} ± {entry['std']:.{digits}f}"


def format_markdown(table: dict) -> str:
    s = table["settings"]
    what = (f"{table['eval_tokens']} held-out tokens" if table.get("eval_tokens")
            else f"{table['eval_sentences_per_domain']} held-out sentences per domain")
    lines = [f"{table['model']} on {table['hw']}: mean ± std over {len(table['seeds'])} chips "
             f"(seeds {table['seeds'][0]}..{table['seeds'][-1]}), {what}; {s['steps']} training steps of "
             f"{s['batch']}, chip-specific sets trained at {s['t_train']}; {table['seconds'] / 60:.1f} min in all"]
    for metric, columns in table["metrics"].items():
        digits = 1 if metric == "perplexity" else 4
        lines += ["", f"**{metric}**", "", "| t | " + " | ".join(METHOD_COLUMNS) + " |",
                  "|" + "---|" * (len(METHOD_COLUMNS) + 1)]
        for i, entry in enumerate(columns["fp"]):
            cells = [f"{entry['mean']:.{digits}f}"] + [_cell(columns[k][i], digits) for k in METHOD_COLUMNS[1:]]
            lines.append(f"| {_time_label(entry['t_s'])} | " + " | ".join(cells) + " |")
    if table.get("one_backbone"):
        tasks = list(table["one_backbone"].items())
        lines += ["", "**one programmed backbone, one adapter set per task** (no adapters -> the task's own set; "
                      "FP: " + ", ".join(f"{m} {v['fp']:.4f}" for m, v in tasks) + ")", "",
                  "| t | " + " | ".join(f"{m} ({v['set']})" for m, v in tasks) + " |", "|" + "---|" * (len(tasks) + 1)]
        for i, entry in enumerate(tasks[0][1]["none"]):
            cells = [f"{_cell(v['none'][i], 4)} -> {_cell(v['own_set'][i], 4)}" for _, v in tasks]
            lines.append(f"| {_time_label(entry['t_s'])} | " + " | ".join(cells) + " |")
    lines += ["", "training loss (first step -> mean of the last tenth): "
              + ", ".join(f"{k} {v['first']:.4g} -> {v['last_tenth_mean']:.4g}" for k, v in table["training"].items())]
    return "\n".join(lines) + "\n"
