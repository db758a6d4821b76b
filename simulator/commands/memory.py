"""Memory a command will need, estimated before its large allocations.

Linux overcommits: a size that is too large does not raise MemoryError, the process is
killed mid-run instead. So every path whose allocation a user-chosen size drives (tokens,
decode steps and chunks of a timing run, chip realisations of an accuracy run, the
dimensions of a checkpoint, the batch of a training run) checks its estimate against
MemAvailable first and refuses with one line naming the flag or key, the estimate and
what is available. The per-unit constants are peak-RSS measurements (see each one).
"""
from __future__ import annotations

import math

from simulator.errors import UserError

# Peak RSS of `aimcsim run` per task of the task graph (lowering, schedule, report, outputs):
# measured 245 B on gpt2/hermes64 prefill of 256 tokens in 256 chunks (2.2 M tasks); with margin.
BYTES_PER_TASK = 320
# Chip realisations are held side by side (one forward for all): per analog weight and seed
# the programmed conductances, drift exponents and scratch, measured 29 B with the logits
# below on gpt2-pydoc (84 MB per seed, 2.9 M analog weights, seeds 1..48); 24 B without them.
BYTES_PER_ANALOG_WEIGHT_PER_SEED = 24
BYTES_PER_LOGIT = 16  # float32 logits plus the float64 log-softmax of the metric
BYTES_PER_PARAMETER_LOADED = 12  # fp32 model + tensors read from the file + the fp32 upcast
TIMING_UNITS_CHECKED_FROM = 32  # fewer chunks or decode steps than this always fit
# Seed groups (`seeds_at_once`) are sized to this share of the memory available: the
# per-seed constant is a peak measured on a small model, so keep a margin for the rest.
SEED_GROUP_MEMORY_SHARE = 0.9


def available_bytes() -> int | None:
    """MemAvailable of /proc/meminfo, None where the OS does not say (then nothing is refused)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def format_bytes(n: float) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 1024:.0f} KiB"


def check_fits(needed_bytes: float, flag: str, what: str, hint: str) -> None:
    """One-line UserError when `needed_bytes` exceed the memory available now."""
    available = available_bytes()
    if available is not None and needed_bytes > available:
        raise UserError(f"{flag}: {what} needs about {format_bytes(needed_bytes)} of memory, "
                        f"{format_bytes(available)} is available; {hint}")


def largest_fitting(per_unit_bytes: float) -> int | None:
    """How many units of `per_unit_bytes` fit in the memory available (None: unknown)."""
    available = available_bytes()
    if available is None:
        return None
    return int(available // max(per_unit_bytes, 1.0))


# ---------------------------------------------------------------- timing runs

def timing_units(phase: str, seq: int, new_tokens: int, chunk_tokens) -> tuple[int, str]:
    """(repeated units of the task graph, the flag that sets them): decode steps or prefill chunks.
    Auto chunking keeps within its own task budget and one chunk's tasks do not grow with
    the tokens, so both are one unit."""
    if phase == "decode":
        return new_tokens, "--new-tokens"
    if isinstance(chunk_tokens, int) and not isinstance(chunk_tokens, bool):
        return math.ceil(seq / chunk_tokens), "--chunk-tokens"
    return 1, "--tokens"


def check_timing_memory(hw, workload: str, phase: str | None, mapping, *, batch: int, seq: int,
                        new_tokens: int, chunk_tokens, parallel: int = 1) -> None:
    """Tasks of the full run extrapolated from one and two units (each unit adds the same
    tasks), times BYTES_PER_TASK; `parallel` runs at once (sweep workers)."""
    from simulator.run import default_phase, preset_chunk_tokens
    phase = phase or default_phase(workload)
    chunk_tokens, preset = preset_chunk_tokens(hw, phase, chunk_tokens)
    units, flag = timing_units(phase, seq, new_tokens, chunk_tokens)
    if units < TIMING_UNITS_CHECKED_FROM:
        return
    one, two = (_tasks(hw, workload, phase, mapping, batch, seq, new_tokens, chunk_tokens, n) for n in (1, 2))
    tasks = one + (units - 1) * max(two - one, 0)
    label = f"{flag} {new_tokens if flag == '--new-tokens' else chunk_tokens}"
    if preset:
        label = f"--chunk-tokens auto (system.chunk_tokens: {chunk_tokens} in {hw.source or hw.name})"
    check_fits(tasks * BYTES_PER_TASK * parallel, label,
               f"a task graph of about {tasks:,} tasks ({units:,} "
               f"{'decode steps' if flag == '--new-tokens' else 'chunks'}"
               + (f", {parallel} at once" if parallel > 1 else "") + ")",
               "use fewer decode steps, larger --chunk-tokens or --chunk-tokens auto")


def _tasks(hw, workload, phase, mapping, batch, seq, new_tokens, chunk_tokens, units: int) -> int:
    from simulator.engine.lower import lower
    from simulator.mapping.place import map_workload
    from workloads.registry import build_graph
    if phase == "decode":
        graph = build_graph(workload, phase, batch=batch, seq=seq, new_tokens=units)
    else:
        graph = build_graph(workload, phase, batch=batch, seq=chunk_tokens * units, chunk_tokens=chunk_tokens)
    return lower(graph, map_workload(graph, hw, mapping), hw).n_tasks


# ---------------------------------------------------------------- accuracy runs

def analog_weights(loaded_model, analog_names) -> int:
    return sum(loaded_model.model.get_submodule(name).weight.numel() for name in analog_names)


def bytes_per_seed(loaded_model, analog_names) -> int:
    """One chip realisation of the analog weights, plus its logits (GPT-2 family)."""
    per_seed = analog_weights(loaded_model, analog_names) * BYTES_PER_ANALOG_WEIGHT_PER_SEED
    if loaded_model.family == "gpt2":
        from simulator.accuracy.lm import EVAL_WINDOW_TOKENS
        window = min(EVAL_WINDOW_TOKENS, loaded_model.model.config.n_positions)
        per_seed += window * loaded_model.model.config.vocab_size * BYTES_PER_LOGIT
    return per_seed


def check_seeds_memory(loaded_model, analog_names, seeds: int, flag: str = "--seeds", parallel: int = 1) -> None:
    """All chip realisations of the analog weights live at once, plus their logits."""
    if not analog_names or seeds <= 1:
        return
    weights = analog_weights(loaded_model, analog_names)
    per_seed = bytes_per_seed(loaded_model, analog_names)
    most = largest_fitting(per_seed * parallel)
    check_fits(per_seed * seeds * parallel, f"{flag} {seeds}",
               f"{seeds} chip realisations of {len(analog_names)} analog projections "
               f"({weights:,} weights)" + (f", {parallel} at once" if parallel > 1 else ""),
               f"use at most {most} seeds" if most else "map fewer projections analog")


def seeds_at_once(loaded_model, analog_names, seeds: int, processes: int, model_copies: int | None = None,
                  flag: str = "--seeds") -> int:
    """How many chip realisations each of `processes` may hold at once, with `model_copies`
    copies of the model loaded in all (default: one per process): its whole share of the
    seeds when that fits the memory available, else the most that fit, so `profile` and
    `accuracy` measure their seeds in groups instead of refusing (a seed's values do not
    depend on which seeds share its forwards). A one-line UserError when not even one fits."""
    share = -(-seeds // processes)
    available = available_bytes()
    if not analog_names or available is None:
        return share
    per_seed = bytes_per_seed(loaded_model, analog_names)
    model_bytes = (processes if model_copies is None else model_copies) * BYTES_PER_PARAMETER_LOADED * sum(
        p.numel() for p in loaded_model.model.parameters())
    most = int((SEED_GROUP_MEMORY_SHARE * available - model_bytes) // (processes * per_seed))
    if most < 1:
        raise UserError(f"{flag} {seeds}: one chip realisation of {len(analog_names)} analog projections in each "
                        f"of {processes} processes needs about {format_bytes(processes * per_seed + model_bytes)} "
                        f"of memory, {format_bytes(available)} is available; use fewer --workers or "
                        "map fewer projections analog")
    return max(1, min(share, most))


# ---------------------------------------------------------------- checkpoints

def check_checkpoint_memory(workload: str, flag: str) -> None:
    """A checkpoint folder's model, sized from its config.json without allocating it (torch's
    meta device), must fit before its weights are read. Embedded checkpoints are small."""
    from workloads.registry import NAMED_CHECKPOINTS, checkpoint_folder, model_config
    folder = checkpoint_folder(workload)
    if folder is None or workload in NAMED_CHECKPOINTS:
        return
    parameters = model_parameters(model_config(workload)[1], str(folder / "config.json"))
    check_fits(parameters * BYTES_PER_PARAMETER_LOADED, f"{flag} {workload}",
               f"a model of {parameters:,} parameters (config.json)",
               "check the dimensions in its config.json")


def model_parameters(config: dict, source: str) -> int:
    import torch

    from workloads.checkpoint import model_from_config
    with torch.device("meta"):
        model = model_from_config(config, source)
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


# ---------------------------------------------------------------- training (aimcsim adapt)

# Per token of a training batch: the student's and the teacher's logits with their
# log-softmax and gradient (4 float32 per vocabulary entry), and the activations kept for
# the backward pass, about 32 float32 per hidden unit and layer (attention, the 4x MLP,
# norms and residuals). An upper estimate from the tensor shapes, not a measurement.
LOGIT_BYTES_PER_TOKEN_ENTRY = 16
ACTIVATION_BYTES_PER_TOKEN_UNIT_LAYER = 128


def check_training_memory(loaded_model, batch: int, seq: int) -> None:
    config = loaded_model.model.config
    width = getattr(config, "n_embd", None) or getattr(config, "hidden_size", 0)
    layers = getattr(config, "n_layer", None) or getattr(config, "num_hidden_layers", 0)
    vocab = config.vocab_size if loaded_model.family == "gpt2" else 0  # encoders: embedding-level losses
    per_token = vocab * LOGIT_BYTES_PER_TOKEN_ENTRY + width * layers * ACTIVATION_BYTES_PER_TOKEN_UNIT_LAYER
    most = largest_fitting(per_token * seq)
    check_fits(per_token * batch * seq, f"--batch {batch}", f"a training batch of {batch} x {seq} tokens",
               f"use at most --batch {most} or a shorter --seq" if most else "use a shorter --seq")
