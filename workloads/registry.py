"""Workload names and checkpoint folders -> model configs, graphs and loaded models.

A workload is a published model name (shapes only, see `workloads.configs`), the
embedded default `gpt2-pydoc` (shipped in `workloads/data/gpt2-pydoc`), or a local
Hugging Face checkpoint folder whose `config.json` says `model_type` gpt2, bert or
mobilebert. The timing side only needs the config; accuracy needs weights.
"""
from __future__ import annotations

import json
from pathlib import Path

from simulator.errors import UserError
from simulator.ir.graph import Graph
from workloads.bert.graph import build_bert_graph, build_mobilebert_graph
from workloads.configs import NAMED_CONFIGS
from workloads.gpt2.graph import build_gpt2_graph

EMBEDDED_DEFAULT = "gpt2-pydoc"
EMBEDDED_DIR = Path(__file__).resolve().parent / "data" / EMBEDDED_DEFAULT
WORKLOAD_NAMES = (*NAMED_CONFIGS, EMBEDDED_DEFAULT)
FAMILIES = ("gpt2", "bert", "mobilebert")
_BUILDERS = {"gpt2": build_gpt2_graph, "bert": build_bert_graph, "mobilebert": build_mobilebert_graph}


def _read_checkpoint_config(folder: Path) -> tuple[str, dict]:
    path = folder / "config.json"
    if not path.is_file():
        raise UserError(f"{folder}: no config.json; a checkpoint folder needs the Hugging Face "
                        "config.json next to its weights")
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot read JSON: {exc}") from None
    if not isinstance(config, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(config).__name__}")
    family = config.get("model_type")
    if family not in FAMILIES:
        raise UserError(f"{path}: model_type: expected one of {', '.join(FAMILIES)}, got {family!r}")
    return family, config


def _unknown_workload(workload: str) -> UserError:
    return UserError(f"unknown workload {workload!r}: expected one of {', '.join(WORKLOAD_NAMES)} "
                     "or a checkpoint folder containing config.json")


def model_config(workload: str) -> tuple[str, dict]:
    """(family, HF config dict) of a workload name or checkpoint folder."""
    if workload in NAMED_CONFIGS:
        config = NAMED_CONFIGS[workload]
        return config["model_type"], dict(config)
    if workload == EMBEDDED_DEFAULT:
        if not EMBEDDED_DIR.is_dir():
            raise UserError(f"{EMBEDDED_DIR}: the embedded model {EMBEDDED_DEFAULT} is missing "
                            "from this installation; reinstall aimcsim or pass a checkpoint folder")
        return _read_checkpoint_config(EMBEDDED_DIR)
    if Path(workload).is_dir():
        return _read_checkpoint_config(Path(workload))
    raise _unknown_workload(workload)


def build_graph(workload: str, phase: str, *, batch: int = 1, seq: int = 128,
                new_tokens: int = 16, chunk_tokens: int | None = None,
                logits: str = "all") -> Graph:
    """The timing graph of `workload` in `phase` (`logits` applies to GPT-2 prefill only)."""
    family, config = model_config(workload)
    if workload in NAMED_CONFIGS:
        model, source = workload, workload
    else:
        folder = EMBEDDED_DIR if workload == EMBEDDED_DEFAULT else Path(workload)
        model, source = folder.name, str(folder / "config.json")
    run = {"batch": batch, "seq": seq, "chunk_tokens": chunk_tokens}
    if family == "gpt2":
        run.update(new_tokens=new_tokens, logits=logits)
    return _BUILDERS[family](config, phase, model=model, source=source, **run)


def load_model(name_or_path: str):
    """The weights of a workload as `workloads.checkpoint.LoadedModel`, for accuracy runs."""
    if name_or_path in NAMED_CONFIGS:
        raise UserError(f"workload {name_or_path!r} is a shape-only name: accuracy needs weights. "
                        "Put a Hugging Face checkpoint folder (config.json + model.safetensors) "
                        f"on disk and pass its path, or use the embedded {EMBEDDED_DEFAULT}")
    if name_or_path == EMBEDDED_DEFAULT:
        model_config(EMBEDDED_DEFAULT)  # a clear error if the embedded model is missing
        folder = EMBEDDED_DIR
    elif Path(name_or_path).is_dir():
        folder = Path(name_or_path)
    else:
        raise _unknown_workload(name_or_path)
    # Imported here: it pulls in torch, which the timing-only paths never need.
    from workloads.checkpoint import load_checkpoint
    return load_checkpoint(folder)
