"""Load a hardware YAML (or a preset name) into a validated, frozen `HwConfig`.

The YAML sections map one to one onto the dataclasses of `simulator.hw.schema`. Every
leaf is checked where it is written (type, range, enum), so an error names the file
that holds the bad value, even deep in an `extends:` chain, or `--set KEY` for a
command-line override. Layers merge key by key: the base preset, then each file that
extends it, then the overrides.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import typing
from pathlib import Path

import yaml

from simulator.analog.tile_cost import (ADC_ENERGY_MODELS, ADC_TIME_KEY, ADC_TYPES, DAC_TIME_KEY,
                                        INPUT_ENCODINGS)
from simulator.errors import UserError, where
from simulator.hw.schema import AdcConfig, DacConfig, HwConfig
from simulator.safe_yaml import DuplicateKey, SafeLoader, read_yaml_file

PRESET_DIR = Path(__file__).resolve().parents[2] / "hwconfigs"
PRESET_DIR_ENV = "AIMCSIM_HWCONFIGS"
REQUIRED_SECTIONS = ("analog", "digital")  # the two compute halves must be stated explicitly

ENUMS = {
    "system.dispatch": ("fifo", "sequence_first"),
    "analog.reduction_cores": ("balanced", "nearest", "exclusive"),
    "digital.attention_cores": ("per_head", "reduction"),
    "analog.adc.type": ADC_TYPES,
    "analog.adc.energy_model": ADC_ENERGY_MODELS,
    "analog.dac.encoding": INPUT_ENCODINGS,
    "analog.device.model": ("pcm", "gaussian", "reram", "ideal"),
    "analog.device.gaussian_kind": ("additive", "proportional"),
    "analog.periphery.noise_management": ("abs_max", "none"),
    "analog.periphery.bound_management": ("iterative", "none"),
    "analog.periphery.weight_scaling": ("per_tile", "per_column"),
    "analog.periphery.drift_compensation": ("global", "per_column", "none"),
    "interconnect.topology": ("mesh", "bus"),
    "interconnect.flow_control": ("cut_through", "store_and_forward"),
    "analog.multiplexing": ("reprogram_per_pass", "resident_subset"),
    "analog.device.pulsed.model": ("constant_step", "linear_step", "soft_bounds", "exp_step", "pow_step"),
    "analog.programming.model": ("fixed", "verify"),
}
INT_RANGES = {"analog.dac_bits": (2, 16), "analog.adc_bits": (2, 16)}  # 2^(bits-1) - 1 >= 1 level
FRACTIONS = {"analog.device.stuck_at_zero_frac", "analog.device.stuck_at_gmax_frac",
             "analog.programming.usable_range"}
POSITIVE = {
    "system.clock_ghz",
    "analog.rows", "analog.cols", "analog.adcs_per_tile", "analog.mvm_latency_ns",
    "analog.device.g_max_uS", "analog.device.t0_s", "analog.device.t_read_s", "analog.device.endurance_cycles",
    "analog.periphery.inp_bound", "analog.periphery.out_bound",
    "analog.periphery.max_bound_iterations",
    "digital.cores", "digital.macs_per_cycle", "digital.simd_lanes", "digital.exp_per_cycle",
    "digital.gelu_per_cycle", "digital.layernorm_elems_per_cycle", "digital.activation_bytes",
    "digital.weight_bytes", "digital.sram_bytes_per_cycle",
    "interconnect.mesh_cols", "interconnect.link_bytes_per_cycle",
    "memory.dram_bandwidth_gb_s",
    "analog.device.pulsed.dw_min", "analog.device.pulsed.pow_gamma",
    "analog.programming.tolerance", "analog.programming.max_iterations",
    "analog.programming.max_pulses_per_iteration", "analog.programming.pulse_ns",
    "analog.programming.verify_read_ns",
}  # every other number must be >= 0, except:
SIGNED = {  # pulsed-device coordinates and asymmetries may take either sign
    "analog.device.pulsed.w_min", "analog.device.pulsed.w_max", "analog.device.pulsed.up_down",
    "analog.device.pulsed.pow_up_down", "analog.device.pulsed.exp_a", "analog.device.pulsed.exp_b",
    "analog.device.pulsed.gamma_up", "analog.device.pulsed.gamma_down",
}

# Upper bounds: counts a chip could plausibly have (every array the simulator allocates
# grows with them, so they also bound memory), and rates, times and energies a few orders
# of magnitude beyond any published design. Any number not listed is bounded by
# DEFAULT_MAXIMUM, which keeps products such as cycles x energy finite in float64.
MAXIMA = {
    "system.clock_ghz": 100.0, "system.chunk_tokens": 1024,
    "analog.tiles": 65536, "analog.rows": 4096, "analog.cols": 4096, "analog.adcs_per_tile": 4096,
    "analog.periphery.max_bound_iterations": 100,
    "analog.static_power_mw": 1e6,
    "digital.cores": 65536, "digital.macs_per_cycle": 1 << 24, "digital.simd_lanes": 1 << 20,
    "digital.exp_per_cycle": 1 << 20, "digital.gelu_per_cycle": 1 << 20,
    "digital.layernorm_elems_per_cycle": 1 << 20, "digital.activation_bytes": 8,
    "digital.weight_bytes": 8, "digital.sram_kib": 1 << 24, "digital.sram_bytes_per_cycle": 1 << 20,
    "digital.static_power_mw": 1e6,
    "interconnect.mesh_cols": 65536 * 2, "interconnect.link_bytes_per_cycle": 1 << 20,
    "interconnect.hop_cycles": 1_000_000,
    "memory.dram_bandwidth_gb_s": 1e6, "memory.dram_latency_ns": 1e9,
}
DEFAULT_MAXIMUM = 1e12

# Per-MVM totals of the first cost model, now composed from per-unit keys (docs/hwconfigs.md).
RETIRED_KEYS = {
    "analog.input_encoding": "analog.dac.encoding",
    "analog.input_phase_ns": "analog.dac.ns_per_step (pwm) or analog.dac.phase_ns",
    "analog.adc_conversion_ns": "analog.adc.type with its per-unit time (ns_per_bit, ns_per_lsb, conversion_ns)",
    "analog.adc_model": "analog.adc.energy_model",
    "analog.adc_energy_pj": "analog.adc.energy_pj (energy_model fixed)",
    "analog.dac_energy_pj": "analog.dac.energy_pj_per_row",
    "analog.array_energy_pj": "analog.cell_read_power_uw (per cell, over the input window)",
    "analog.periphery_energy_pj": "analog.periphery_energy_pj_per_col and analog.control_energy_pj",
}


_YamlLoader = SafeLoader  # float exponents, duplicate keys refused (simulator/safe_yaml.py)


@dataclasses.dataclass(frozen=True)
class _Leaf:
    """One validated scalar with where it was written (`file: key` or `--set key`)."""

    value: object
    location: str


def load_hw(path_or_name, overrides: dict[str, object] | None = None) -> HwConfig:
    """Load a preset name (`hermes64`) or a YAML path, apply dotted-key overrides, validate."""
    path = resolve_config_path(str(path_or_name))
    leaves, sections = _load_layers(path, chain=())
    for key, value in (overrides or {}).items():
        leaves[key] = _validated_leaf(key, value, location=f"--set {key}")
    missing = [s for s in REQUIRED_SECTIONS if s not in sections]
    if missing:
        raise UserError(f"{_display(path)}: missing required section '{missing[0]}' "
                        f"(required: {', '.join(REQUIRED_SECTIONS)})")
    _check_converters(leaves)
    config = _build(HwConfig, "", leaves, name=path.stem, source=_display(path))
    return _resolve_programming(config, leaves)


def parse_overrides(items: list[str]) -> dict[str, object]:
    """Turn `["analog.tiles=64", "analog.device.model=ideal"]` into a dict of YAML-typed values."""
    overrides = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item}: expected KEY=VALUE, e.g. analog.tiles=64")
        try:
            value = yaml.load(text, Loader=_YamlLoader) if text.strip() else text
        except (yaml.YAMLError, RecursionError):
            value = text
        except DuplicateKey as exc:  # in a flow mapping such as {a: 1, a: 2}
            raise UserError(f"--set {key.strip()}: cannot read value {text!r}: {exc}") from None
        overrides[key.strip()] = value
    return overrides


def preset_dirs() -> list[Path]:
    """Folders searched for preset names: `$AIMCSIM_HWCONFIGS` entries first, then the repo's."""
    extra = [Path(p) for p in os.environ.get(PRESET_DIR_ENV, "").split(os.pathsep) if p]
    return extra + [PRESET_DIR]


def preset_names() -> list[str]:
    return sorted({p.stem for d in preset_dirs() if d.is_dir() for p in d.glob("*.yaml")})


def resolve_config_path(path_or_name: str, relative_to: Path | None = None) -> Path:
    """An existing file, else a preset name; anything else is a `UserError` listing presets."""
    if not path_or_name.strip():
        raise UserError(f"hardware config: expected a preset name ({', '.join(preset_names())}) "
                        "or a YAML path, got ''")
    candidate = Path(path_or_name)
    if relative_to is not None and not candidate.is_absolute():
        candidate = relative_to.parent / candidate
    if candidate.is_file():
        return candidate
    if "/" not in path_or_name and os.sep not in path_or_name:
        stem = path_or_name[:-5] if path_or_name.endswith(".yaml") else path_or_name
        for folder in preset_dirs():
            if (folder / f"{stem}.yaml").is_file():
                return folder / f"{stem}.yaml"
    raise UserError(f"{path_or_name}: hardware config not found; presets: {', '.join(preset_names())}")


def _load_layers(path: Path, chain: tuple[Path, ...]) -> tuple[dict[str, _Leaf], set[str]]:
    """Leaves and declared sections of `path` merged over those of the file it extends."""
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(_display(p) for p in chain + (resolved,))
        raise UserError(f"{_display(path)}: extends: cycle {cycle}")
    raw = _read_yaml(path)
    origin = _display(path)
    leaves: dict[str, _Leaf] = {}
    sections: set[str] = set()
    if "extends" in raw:
        base = raw.pop("extends")
        if not isinstance(base, str):
            raise UserError(f"{origin}: extends: expected a preset name or a YAML path, got {base!r}")
        try:
            base_path = resolve_config_path(base, relative_to=path)
        except UserError as exc:
            raise UserError(f"{origin}: extends: {exc}") from None
        leaves, sections = _load_layers(base_path, chain + (resolved,))
    for key, value in _flatten_section(raw, HwConfig, "", origin, sections).items():
        leaves[key] = _validated_leaf(key, value, where(origin, key))
    return leaves, sections


def _read_yaml(path: Path) -> dict:
    origin = _display(path)
    raw = read_yaml_file(path, origin)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"{origin}: expected a mapping of sections "
                        f"({', '.join(_settable_fields(HwConfig))}), got {type(raw).__name__}")
    return raw


def _flatten_section(raw: dict, cls, prefix: str, origin: str, sections: set[str]) -> dict[str, object]:
    """Dotted leaf keys of one YAML mapping, checking every key against the dataclass `cls`."""
    fields = _settable_fields(cls)
    flat = {}
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if dotted in RETIRED_KEYS:
            raise UserError(f"{where(origin, dotted)}: {_retired(dotted)}")
        if key not in fields:
            valid = ", ".join(fields) + (", extends" if cls is HwConfig else "")
            raise UserError(f"{where(origin, dotted)}: unknown key; valid keys: {valid}")
        field_type = fields[key]
        if dataclasses.is_dataclass(field_type):
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise UserError(f"{where(origin, dotted)}: expected a section with keys "
                                f"{', '.join(_settable_fields(field_type))}, got {value!r}")
            sections.add(dotted)
            flat.update(_flatten_section(value, field_type, f"{dotted}.", origin, sections))
        else:
            flat[dotted] = value
    return flat


def _validated_leaf(key: str, value, location: str) -> _Leaf:
    """Check one scalar against its schema type and the range rules above."""
    field_type = _field_type_at(key, location)
    if dataclasses.is_dataclass(field_type):
        raise UserError(f"{location}: is a section; set one of its keys: "
                        f"{', '.join(_settable_fields(field_type))}")
    optional = type(None) in typing.get_args(field_type)
    base_type = next((t for t in typing.get_args(field_type) if t is not type(None)), field_type)
    if value is None and optional:
        return _Leaf(None, location)
    expected = _expectation(key, base_type) + _bound_text(key, value) + (" or null" if optional else "")
    if not _is_valid(key, base_type, value):
        raise UserError(f"{location}: expected {expected}, got {value!r}")
    return _Leaf(float(value) if base_type is float else value, location)


def _is_valid(key: str, base_type, value) -> bool:
    if base_type is bool:
        return isinstance(value, bool)
    if base_type is str:
        return isinstance(value, str) and (key not in ENUMS or value in ENUMS[key])
    numeric = (int,) if base_type is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, numeric) or not math.isfinite(value):
        return False
    low, high = INT_RANGES.get(key, (None, None))
    if low is not None:
        return low <= value <= high
    if key in FRACTIONS:
        return 0 <= value <= 1
    if value > MAXIMA.get(key, DEFAULT_MAXIMUM):
        return False
    if key in SIGNED:
        return True
    return value > 0 if key in POSITIVE else value >= 0


def _bound_text(key: str, value) -> str:
    """' <= 65536' when `value` is a number above the key's upper bound, else ''."""
    if key in INT_RANGES or key in FRACTIONS or isinstance(value, bool):
        return ""
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return ""
    maximum = MAXIMA.get(key, DEFAULT_MAXIMUM)
    return f" <= {maximum:.15g}" if value > maximum else ""


def _expectation(key: str, base_type) -> str:
    if base_type is bool:
        return "true or false"
    if base_type is str:
        return f"one of {', '.join(ENUMS[key])}" if key in ENUMS else "a string"
    noun = "an integer" if base_type is int else "a number"
    if key in INT_RANGES:
        low, high = INT_RANGES[key]
        return f"{noun} in {low}..{high}"
    if key in FRACTIONS:
        return f"{noun} in 0..1"
    if key in SIGNED:
        return f"a finite {'integer' if base_type is int else 'number'}"
    sign = "positive" if key in POSITIVE else "non-negative"
    return f"a {sign} {'integer' if base_type is int else 'number'}"


def _field_type_at(key: str, location: str):
    """The schema type behind a dotted key; unknown keys list their valid siblings."""
    if key in RETIRED_KEYS:
        raise UserError(f"{location}: {_retired(key)}")
    cls = HwConfig
    for part in key.split("."):
        fields = _settable_fields(cls) if dataclasses.is_dataclass(cls) else {}
        if part not in fields:
            raise UserError(f"{location}: unknown key; valid keys: {', '.join(fields) or 'none'}")
        cls = fields[part]
    return cls


def _retired(key: str) -> str:
    return f"no longer a key: use {RETIRED_KEYS[key]} (docs/hwconfigs.md)"


def _check_converters(leaves: dict[str, _Leaf]) -> None:
    """A converter whose type (or encoding) is written needs that type's per-unit time.

    Parameters of the other types may be present, so one config can be swept over types;
    only the chosen type's apply. An unset type with a parameter written for some type
    would silently cost nothing, so that is an error too.
    """
    for section, type_key, time_keys, defaults in (
            ("analog.adc", "type", ADC_TIME_KEY, AdcConfig()),
            ("analog.dac", "encoding", DAC_TIME_KEY, DacConfig())):
        written = {key: leaves[f"{section}.{key}"] for key in (type_key, *dict.fromkeys(time_keys.values()))
                   if f"{section}.{key}" in leaves}
        if not written:
            continue
        if type_key in written:
            chosen, location = written[type_key].value, written[type_key].location
            what = f"{chosen} is timed by"
        else:
            chosen, location = getattr(defaults, type_key), next(iter(written.values())).location
            what = f"{section}.{type_key} is not given, so it is {chosen}, timed by"
        needed = time_keys[chosen]
        if needed not in written:
            raise UserError(f"{location}: {what} {section}.{needed}, which is not given; "
                            "set it (docs/hwconfigs.md)")


def _resolve_programming(config: HwConfig, leaves: dict[str, _Leaf]) -> HwConfig:
    """Check the pulsed device; under `programming.model: verify` replace the per-tile
    program time and energy by the program-and-verify model's expected figures."""
    from simulator.analog import programming, pulsed  # physics lives above hw/: import on use
    pulsed_keys = [leaf for key, leaf in leaves.items() if key.startswith("analog.device.pulsed.")]
    try:
        pulsed.check_pulsed(config.analog.device.pulsed)
    except UserError as exc:
        origin = pulsed_keys[-1].location.split(": ")[0] if pulsed_keys else ""
        origin = "--set" if origin.startswith("--set") else origin
        raise UserError(f"{origin}: {exc}" if origin else str(exc)) from None
    if config.analog.programming.model == "fixed":
        return config
    # The fixed figures (possibly inherited through extends:) are replaced, not an error:
    # a preset that states them can still be switched to verify with --set.
    cost = programming.expected_tile_cost(config.analog)
    analog = dataclasses.replace(config.analog, program_time_per_tile_us=cost.time_us,
                                 program_energy_per_tile_nj=cost.energy_nj)
    return dataclasses.replace(config, analog=analog)


def _build(cls, prefix: str, leaves: dict[str, _Leaf], **extra):
    kwargs = dict(extra)
    for name, field_type in _settable_fields(cls).items():
        dotted = f"{prefix}{name}"
        if dataclasses.is_dataclass(field_type):
            kwargs[name] = _build(field_type, f"{dotted}.", leaves)
        elif dotted in leaves:
            kwargs[name] = leaves[dotted].value
    return cls(**kwargs)


def _settable_fields(cls) -> dict[str, object]:
    """Field name -> resolved type; `name` and `source` come from the file, not from YAML."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)
            if not (cls is HwConfig and f.name in ("name", "source"))}


def _display(path: Path) -> str:
    """A path as short as it can be said: relative to the working folder when inside it."""
    absolute = Path(path).resolve()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)
