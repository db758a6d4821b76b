"""Mapping files: YAML in, YAML out, checked against the workload and the hardware.

Format (every key optional):

    strategy: my-mapping          # a label carried into reports (default: explicit)
    default: digital              # target of projections no entry matches (default: digital)
    projections:                  # name or fnmatch glob -> analog | digital
      "transformer.h.*.mlp.c_fc": analog
      "transformer.h.1?.*": digital
      lm_head: digital
    program_rounds: 1             # written by save_mapping, with:
    placements:                   # explicit tiles/cores; if present they are used as is
      - {projection: lm_head, target: digital, cores: [0, 1]}
      # a projection split over programming rounds also lists the round of each block:
      # block_rounds: [0, 0, 1, 1]   (row-block major, like tiles; see simulator.mapping.mapping)

Precedence: `default`, then glob entries in file order (a later glob overrides an
earlier one), then exact names, which win over any glob. A name that is not a
projection, or a glob matching none, is an error that suggests close names. A file
with `placements` (as `save_mapping` writes) loads back to the identical Mapping.
"""
from __future__ import annotations

import difflib
import fnmatch
from dataclasses import asdict
from pathlib import Path

import yaml

from simulator.atomic import atomic_output
from simulator.errors import UserError
from simulator.hw.schema import HwConfig
from simulator.ir.graph import Graph
from simulator.mapping.mapping import DIGITAL, Mapping, Placement
from simulator.mapping.place import check_mapping, check_target, place_targets
from simulator.safe_yaml import read_yaml_file

TOP_LEVEL_KEYS = ("strategy", "default", "projections", "program_rounds", "placements")
PLACEMENT_INT_KEYS = ("row_blocks", "col_blocks", "replicas", "program_round")
PLACEMENT_LIST_KEYS = ("cores", "tiles", "block_rounds")
PLACEMENT_KEYS = ("projection", "target", "cores", "tiles") + PLACEMENT_INT_KEYS + ("block_rounds",)
GLOB_CHARS = "*?["


def _read_document(path) -> dict:
    """The checked top level of a mapping file (duplicate keys, decode errors: safe_yaml)."""
    document = read_yaml_file(path)
    if not isinstance(document, dict):
        raise UserError(f"{path}: expected a mapping with keys {', '.join(TOP_LEVEL_KEYS)}, "
                        f"got {type(document).__name__}")
    unknown = [key for key in document if key not in TOP_LEVEL_KEYS]
    if unknown:
        raise UserError(f"{path}: {unknown[0]}: unknown key; valid keys are {', '.join(TOP_LEVEL_KEYS)}")
    _program_rounds(document, path)  # checked whether or not placements are given
    _strategy(document, path)
    return document


MAX_PROGRAM_ROUNDS = 1_000_000


def _program_rounds(document: dict, source) -> int:
    rounds = document.get("program_rounds", 1)
    if not isinstance(rounds, int) or isinstance(rounds, bool) or not 1 <= rounds <= MAX_PROGRAM_ROUNDS:
        raise UserError(f"{source}: program_rounds: expected a positive integer <= "
                        f"{MAX_PROGRAM_ROUNDS}, got {rounds!r}")
    return rounds


def _suggest(key: str, names: list[str]) -> str:
    close = difflib.get_close_matches(key, names, n=3, cutoff=0.5)
    return f"; did you mean {', '.join(close)}?" if close else ""


def _is_glob(key) -> bool:
    return isinstance(key, str) and any(ch in key for ch in GLOB_CHARS)


def _resolve_targets(document: dict, names: list[str], source) -> dict[str, str]:
    """projection -> target for every name, applying the precedence in the module doc."""
    default = check_target(document.get("default", DIGITAL), f"{source}: default")
    entries = document.get("projections") or {}
    if not isinstance(entries, dict):
        raise UserError(f"{source}: projections: expected a mapping of name or glob -> "
                        f"analog | digital, got {type(entries).__name__}")
    targets = dict.fromkeys(names, default)
    globs_first = sorted(entries.items(), key=lambda entry: not _is_glob(entry[0]))  # stable
    for key, value in globs_first:
        target = check_target(value, f"{source}: projections.{key}")
        if _is_glob(key):
            matched = [name for name in names if fnmatch.fnmatchcase(name, key)]
            problem = "glob matches no projection"
        else:
            matched = [key] if key in targets else []
            problem = "unknown projection"
        if not matched:
            raise UserError(f"{source}: projections.{key}: {problem}{_suggest(str(key), names)}")
        for name in matched:
            targets[name] = target
    return targets


def load_mapping_targets(path, projections) -> dict[str, str]:
    """projection name -> "analog" | "digital" from a mapping file.

    `projections`: the projection names (or `Projection`s) of the workload, in model order.
    """
    names = [p if isinstance(p, str) else p.name for p in projections]
    return _resolve_targets(_read_document(path), names, path)


def _int_list(value, location: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool)
                                              for v in value):
        raise UserError(f"{location}: expected a list of integers, got {value!r}")
    return tuple(value)


def _placement_from_entry(entry, index: int, source) -> Placement:
    where = f"{source}: placements[{index}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("projection"), str):
        raise UserError(f"{where}: expected a mapping with a projection name, got {entry!r}")
    unknown = [key for key in entry if key not in PLACEMENT_KEYS]
    if unknown:
        raise UserError(f"{where}: {unknown[0]}: unknown key; valid keys are {', '.join(PLACEMENT_KEYS)}")
    fields = {"projection": entry["projection"],
              "target": check_target(entry.get("target"), f"{where}.target")}
    for key in PLACEMENT_LIST_KEYS:
        if key in entry:
            fields[key] = _int_list(entry[key], f"{where}.{key}")
    for key in PLACEMENT_INT_KEYS:
        if key in entry:
            if not isinstance(entry[key], int) or isinstance(entry[key], bool):
                raise UserError(f"{where}.{key}: expected an integer, got {entry[key]!r}")
            fields[key] = entry[key]
    return Placement(**fields)


def _explicit_mapping(document: dict, names: list[str], source) -> Mapping:
    entries = document["placements"]
    if not isinstance(entries, list):
        raise UserError(f"{source}: placements: expected a list, got {type(entries).__name__}")
    placements = tuple(_placement_from_entry(e, i, source) for i, e in enumerate(entries))
    if "projections" in document or "default" in document:
        targets = _resolve_targets(document, names, source)
        for placement in placements:
            if targets.get(placement.projection, placement.target) != placement.target:
                raise UserError(f"{source}: placements: {placement.projection} is "
                                f"{placement.target} but projections says "
                                f"{targets[placement.projection]}")
    return Mapping(placements, strategy=_strategy(document, source),
                   program_rounds=_program_rounds(document, source))


def _strategy(document: dict, source) -> str:
    strategy = document.get("strategy", "explicit")
    if not isinstance(strategy, str):
        raise UserError(f"{source}: strategy: expected a label string, got {strategy!r}")
    return strategy


def load_mapping(path, graph: Graph, hw: HwConfig, *, replicate: bool = False) -> Mapping:
    """The Mapping a file describes for `graph` on `hw`: its placements, or placed from its
    targets (with spare-tile replicas if `replicate`)."""
    document = _read_document(path)
    names = [p.name for p in graph.projections]
    if "placements" in document:
        return check_mapping(_explicit_mapping(document, names, path), graph, hw, str(path))
    return place_targets(graph, hw, _resolve_targets(document, names, path),
                         strategy=_strategy(document, path), source=str(path),
                         replicate=replicate)


def mapping_document(mapping: Mapping) -> dict:
    """The YAML-ready dict of a Mapping: its targets and every placement."""
    return {
        "strategy": mapping.strategy,
        "program_rounds": mapping.program_rounds,
        "projections": mapping.targets(),
        "placements": [_placement_entry(p) for p in mapping.placements],
    }


def _placement_entry(placement: Placement) -> dict:
    """A placement as YAML-ready data; `block_rounds` only for a projection split over rounds."""
    entry = {**asdict(placement), "cores": list(placement.cores), "tiles": list(placement.tiles),
             "block_rounds": list(placement.block_rounds)}
    if not placement.block_rounds:
        del entry["block_rounds"]
    return entry


def save_mapping(mapping: Mapping, path) -> None:
    """Write `mapping` so that `load_mapping` gives it back; atomic (temp file, then rename)."""
    path = Path(path)
    if not path.parent.is_dir() and str(path) != "-":
        raise UserError(f"{path}: cannot save the mapping: folder {path.parent} does not exist")
    document = mapping_document(mapping)
    placements = {"placements": document.pop("placements")}
    # Targets one per line; each placement's tile and core lists inline on one line.
    text = (yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
            + yaml.safe_dump(placements, sort_keys=False, default_flow_style=None, width=120))
    with atomic_output(path, ".yaml") as tmp, open(tmp, "w") as stream:
        stream.write(text)
