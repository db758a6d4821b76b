"""The adaptation comparison: FP, analog without compensation, LoRA (chip-agnostic and
chip-specific) and AHWA, over drift times and chip realisations, from one command.

    python -m simulator.adapt.experiment --model gpt2-pydoc --out-dir results/adapt_gpt2
    python -m simulator.adapt.experiment --model minilm --out-dir results/adapt_minilm

Trains the three adaptations (resumable: each writes its adapter file next to a
checkpoint; a finished file is reused), evaluates every method on the same chips with
the numba inference kernels (`simulator.accuracy.evaluate.evaluate_accuracy`), and writes
`table.json` and `table.md`. For encoders it also puts several adapter sets on ONE
programmed backbone (`--domains`: one per text domain, plus the `source` task head) and
scores each with its own set. "No compensation" means no adapters (the config's global
drift compensation stays on, as in Li et al.).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

from simulator.accuracy.evaluate import evaluate_accuracy
from simulator.accuracy.metrics import mean_std
from simulator.adapt.files import load_adapters, model_fingerprint, save_adapters
from simulator.adapt.train import AdaptConfig, train
from simulator.atomic import atomic_output
from simulator.commands.accuracy import format_time, parse_times
from simulator.errors import UserError
from simulator.hw.loader import load_hw
from workloads.registry import load_model

METHOD_COLUMNS = ("fp", "no_compensation", "lora_agnostic", "lora_specific", "hwa")


def _adapt(loaded, hw, names, config: AdaptConfig, path: str, progress: bool, head=None) -> str:
    """Train unless `path` exists; returns the file."""
    if os.path.exists(path):
        return path
    started = time.perf_counter()
    result = train(loaded, hw, names, config, checkpoint=path + ".ckpt", progress=progress, head=head)
    meta = {"method": config.method, "mode": config.mode, "model": loaded.name,
            "fingerprint": model_fingerprint(loaded.model), "hw": hw.name, "rank": config.rank,
            "alpha": config.alpha, "chips": list(config.chips), "t_train_s": config.t_train_s,
            "steps": config.steps, "seed": config.seed, "loss": config.loss, "domain": config.domain,
            "seconds": time.perf_counter() - started, "losses": result.losses}
    save_adapters(path, result.tensors, meta)
    if os.path.exists(path + ".ckpt"):
        os.unlink(path + ".ckpt")
    return path


def _row(result) -> list[dict]:
    return [{"t_s": r["t_s"], "mean": r["mean"], "std": r["std"], "values": r["values"]} for r in result.results]


def compare(model: str, hw_name: str, out_dir: str, times_s: list[float], chips: int, steps: int,
            t_train_s: float, batch: int, seq: int, max_tokens: int | None, progress: bool = True,
            hwa_lr: float | None = None) -> dict:
    loaded = load_model(model)
    hw = load_hw(hw_name)
    names = loaded.model.projection_names()
    targets = {n: "analog" for n in names}
    common = dict(steps=steps, batch=batch, seq=seq, seed=0)
    files = {
        "lora_agnostic": _adapt(loaded, hw, names, AdaptConfig(method="lora", mode="agnostic", **common),
                                os.path.join(out_dir, "lora_agnostic.safetensors"), progress),
        "lora_specific": _adapt(loaded, hw, names, AdaptConfig(method="lora", mode="specific", t_train_s=t_train_s,
                                                               chips=tuple(range(chips)), **common),
                                os.path.join(out_dir, "lora_specific.safetensors"), progress),
        "hwa": _adapt(loaded, hw, names, AdaptConfig(method="hwa", lr=hwa_lr, **common),
                      os.path.join(out_dir, "hwa.safetensors"), progress),
    }
    seeds = list(range(chips))
    columns = {}
    plain = evaluate_accuracy(loaded, hw, targets, times_s, seeds, max_tokens=max_tokens)
    columns["fp"] = [{"t_s": t, "mean": plain.fp, "std": 0.0, "values": [plain.fp]} for t in times_s]
    columns["no_compensation"] = _row(plain)
    for key, path in files.items():
        print(f"evaluating {key}", file=sys.stderr)
        columns[key] = _row(evaluate_accuracy(loaded, hw, targets, times_s, seeds, max_tokens=max_tokens,
                                              adapters=load_adapters(path)))
    table = {"model": loaded.name, "hw": hw.name, "metric": plain.metric, "seeds": seeds,
             "eval_tokens": plain.eval_tokens, "t_train_s": t_train_s, "steps": steps, "batch": batch,
             "seq": seq, "columns": columns,
             "trainable": {key: int(sum(t.numel() for t in load_adapters(p).tensors.values())) for key, p in files.items()}}
    if loaded.family != "gpt2":
        table["one_backbone"] = one_backbone(loaded, hw, names, out_dir, times_s, seeds, common, progress)
    return table


def one_backbone(loaded, hw, names, out_dir, times_s, seeds, common, progress) -> dict:
    """Several adapter sets (one per text domain, one for the `source` task) on ONE programmed
    backbone: the chips are programmed once, each set is swapped in and scored on its own task."""
    from simulator.accuracy.metrics import embedding_cosine
    from simulator.adapt.data import DOMAINS, domain_text, encode_sentences, task_sentences
    from simulator.adapt.head import train_source_head
    from simulator.adapt.lora import LoRA
    from simulator.analog.layer import convert_to_analog, set_time
    from workloads.bert.model import sentence_embedding

    head = train_source_head(loaded, seed=0)
    files = {f"distill:{d}": _adapt(loaded, hw, names, AdaptConfig(domain=d, **common),
                                    os.path.join(out_dir, "lora_agnostic.safetensors" if d == "pydoc"
                                                 else f"lora_{d}.safetensors"), progress) for d in DOMAINS}
    files["task:source"] = _adapt(loaded, hw, names, AdaptConfig(loss="task", **common),
                                  os.path.join(out_dir, "lora_task_source.safetensors"), progress, head)
    sets = {key: load_adapters(path) for key, path in files.items()}
    backbone = convert_to_analog(loaded.model, names, hw, seeds).eval()  # programmed once
    adapters = next(iter(sets.values())).attach(backbone, names, seeds)
    R = len(seeds)
    evals = {d: encode_sentences(loaded, list(domain_text(d).eval)) for d in DOMAINS}
    task_text, task_labels = task_sentences("eval")
    task_inputs = encode_sentences(loaded, task_text)
    with torch.no_grad():
        fp_hidden = {d: loaded.model(**batch) for d, batch in evals.items()}
        fp_task = (head(sentence_embedding(loaded.model(**task_inputs), task_inputs["attention_mask"])).argmax(-1)
                   == task_labels).double().mean().item()
    results = {"fp_task_accuracy": fp_task, "rows": []}

    def load_set(adapter_file):
        for name, module in adapters.items():
            with torch.no_grad():
                if adapter_file is None:
                    module.lora_B.zero_()
                else:
                    module.lora_A.copy_(adapter_file.tensors[f"{name}.lora_A"])
                    module.lora_B.copy_(adapter_file.tensors[f"{name}.lora_B"])

    def repeat(batch):
        return {k: v.repeat(R, 1) for k, v in batch.items()}

    for t_s in times_s:
        for label, adapter_file in [("none", None)] + list(sets.items()):
            load_set(adapter_file)
            set_time(backbone, t_s)
            with torch.no_grad():
                row = {"t_s": t_s, "adapters": label}
                for d, batch in evals.items():
                    hidden = backbone(**repeat(batch)).view(R, *fp_hidden[d].shape)
                    keep = batch["attention_mask"].bool()
                    row[f"cosine:{d}"] = mean_std([embedding_cosine(fp_hidden[d][keep], hidden[k][keep])
                                                   for k in range(R)])
                hidden = backbone(**repeat(task_inputs))
                logits = head(sentence_embedding(hidden, task_inputs["attention_mask"].repeat(R, 1)))
                correct = (logits.argmax(-1).view(R, -1) == task_labels).double().mean(dim=1)
                row["task:source"] = mean_std(correct.tolist())
            results["rows"].append(row)
    return results


def table_from_accuracy(plain: dict, adapted: dict[str, dict]) -> dict:
    """The comparison table from `aimcsim accuracy --json` results of the same chips and
    times: `plain` (no adapters) and one per adapted column (lora_agnostic, lora_specific, hwa)."""
    def rows(result):
        return [{"t_s": r["t_s"], "mean": r["mean"], "std": r["std"], "values": r["values"]} for r in result["results"]]
    columns = {"fp": [{"t_s": r["t_s"], "mean": plain["fp"], "std": 0.0, "values": [plain["fp"]]}
                      for r in plain["results"]],
               "no_compensation": rows(plain)}
    for key, result in adapted.items():
        if result["seeds"] != plain["seeds"] or [r["t_s"] for r in result["results"]] != [r["t_s"] for r in plain["results"]]:
            raise UserError(f"{key}: evaluated on other chips or times than the plain run")
        columns[key] = rows(result)
    return {"model": plain["model"], "hw": plain["hw"], "metric": plain["metric"], "seeds": plain["seeds"],
            "eval_tokens": plain.get("eval_tokens"), "columns": columns}


def format_markdown(table: dict) -> str:
    metric = table["metric"]
    header = "| t | " + " | ".join(METHOD_COLUMNS) + " |"
    lines = [f"{table['model']} on {table['hw']}, {metric}, mean ± std over chips {table['seeds']}"
             + (f", {table['eval_tokens']} held-out tokens" if table.get("eval_tokens") else ""),
             "", header, "|" + "---|" * (len(METHOD_COLUMNS) + 1)]
    for i, t_s in enumerate(r["t_s"] for r in table["columns"]["fp"]):
        cells = []
        for key in METHOD_COLUMNS:
            entry = table["columns"][key][i]
            cells.append(f"{entry['mean']:.4g}" if key == "fp" else f"{entry['mean']:.4g} ± {entry['std']:.2g}")
        lines.append(f"| {format_time(t_s) if t_s else '0'} | " + " | ".join(cells) + " |")
    backbone = table.get("one_backbone")
    if backbone:
        keys = [k for k in backbone["rows"][0] if k not in ("t_s", "adapters")]
        lines += ["", f"one programmed backbone, adapter set per task (FP task accuracy "
                      f"{backbone['fp_task_accuracy']:.3f})", "",
                  "| t | adapters | " + " | ".join(keys) + " |", "|" + "---|" * (len(keys) + 2)]
        for row in backbone["rows"]:
            lines.append(f"| {format_time(row['t_s']) if row['t_s'] else '0'} | {row['adapters']} | "
                         + " | ".join(f"{row[k][0]:.4f} ± {row[k][1]:.3f}" for k in keys) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="gpt2-pydoc")
    p.add_argument("--hw", default="hermes64")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--t", default="0,1h,1d,1w,1mo,1y,10y")
    p.add_argument("--chips", type=int, default=3)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--t-train", default="1d")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--max-tokens", type=int, default=4096)
    p.add_argument("--hwa-lr", type=float, default=None)
    p.add_argument("--from-accuracy", metavar="DIR", default=None,
                   help="only assemble the table from acc_plain.json and acc_<column>.json in DIR "
                        "(`aimcsim accuracy --json` runs of the same chips and times)")
    args = p.parse_args(argv)
    if args.from_accuracy:
        def read(name):
            with open(os.path.join(args.from_accuracy, f"acc_{name}.json")) as f:
                return json.load(f)
        table = table_from_accuracy(read("plain"), {k: read(k) for k in METHOD_COLUMNS[2:]})
        markdown = format_markdown(table)
        with atomic_output(os.path.join(args.out_dir, "table.md"), ".md") as tmp, open(tmp, "w") as f:
            f.write(markdown)
        print(markdown)
        return 0
    try:
        from simulator.commands.accuracy import parse_duration_s
        os.makedirs(args.out_dir, exist_ok=True)
        table = compare(args.model, args.hw, args.out_dir, parse_times(args.t), args.chips, args.steps,
                        parse_duration_s(args.t_train), args.batch, args.seq, args.max_tokens, hwa_lr=args.hwa_lr)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with atomic_output(os.path.join(args.out_dir, "table.json"), ".json") as tmp, open(tmp, "w") as f:
        json.dump(table, f, indent=1)
    markdown = format_markdown(table)
    with atomic_output(os.path.join(args.out_dir, "table.md"), ".md") as tmp, open(tmp, "w") as f:
        f.write(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
