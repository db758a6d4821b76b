"""Flags and small helpers shared by several subcommands, so they read and behave alike."""
from __future__ import annotations

import argparse
import json
import math

from simulator.atomic import atomic_output, check_output_paths
from simulator.errors import UserError
from simulator.hw.loader import load_hw, parse_overrides, preset_names

MAX_TOKENS = 1 << 20  # sequence lengths, new tokens and chunks: beyond any model's context
MAX_BATCH = 4096
MAX_SEEDS = 1000


def presets_help() -> str:
    return ", ".join(preset_names())


def add_hw_args(parser, default: str | None = None) -> None:
    parser.add_argument("--hw", default=default, required=default is None, metavar="CONFIG",
                        help=f"hardware config: a preset name ({presets_help()}) or a YAML path"
                             + (f" (default {default})" if default else ""))
    add_set_arg(parser)


def add_set_arg(parser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set analog.tiles=128 (repeatable; "
                             "keys and units as in docs/hwconfigs.md)")


def check_outputs(*outputs) -> None:
    """(flag, path, OutputFormat) triples checked before any computation (see atomic.py)."""
    check_output_paths(outputs)


def wrote(path, what: str = "") -> None:
    """`wrote FILE`, except for data sent to stdout (which must stay clean)."""
    from simulator.atomic import writes_stdout
    if path and not writes_stdout(path):
        print(f"wrote {path}" + (f" ({what})" if what else ""))


def load_hw_arg(args):
    return load_hw(args.hw, parse_overrides(args.set) if args.set else None)


def add_workload_args(parser, default_workload: str) -> None:
    parser.add_argument("--workload", default=default_workload,
                        help="gpt2, gpt2-medium/-large/-xl, mobilebert, bert-base, gpt2-pydoc "
                             f"(embedded), minilm, or a checkpoint folder (default {default_workload})")
    add_phase_args(parser)
    parser.add_argument("--new-tokens", type=bounded_int(MAX_TOKENS), default=16, metavar="N",
                        help="tokens generated in the decode phase (default 16)")
    parser.add_argument("--batch", type=bounded_int(MAX_BATCH), default=1, metavar="N",
                        help="batch size, sequences (default 1)")
    parser.add_argument("--chunk-tokens", type=chunk_tokens_arg, default="auto",
                        help="prefill/encoder tokens per chunk (layers pipeline over chunks): N, "
                             "'none' for one chunk, or 'auto', the fastest size within a task "
                             "budget (default auto)")


def add_phase_args(parser) -> None:
    """--phase and --tokens: which pass of the model is timed, over how many tokens."""
    parser.add_argument("--phase", choices=("prefill", "decode", "encoder"),
                        help="default: prefill for GPT-2, encoder for BERT-family models")
    parser.add_argument("--tokens", "--seq", dest="seq", type=bounded_int(MAX_TOKENS), default=128,
                        metavar="N",
                        help="prompt / sequence length in tokens (default 128)")


EMBEDDED_MODEL = "gpt2-pydoc"


def add_accuracy_args(parser, *, times: str, times_help: str, seeds: int, max_tokens: int | None = None) -> None:
    """--model, --t, --seeds, --max-tokens: the functional-run flags of accuracy, profile, search."""
    parser.add_argument("--model", default=EMBEDDED_MODEL, metavar="MODEL",
                        help=f"gpt2-pydoc (embedded), minilm, or a checkpoint folder (default {EMBEDDED_MODEL})")
    parser.add_argument("--t", default=times, metavar="TIMES",
                        help=f"{times_help}: plain seconds or a number with a unit s, min, h, d, w, "
                             f"mo, y (e.g. 1h, 1d, 1mo, 10y; default {times})")
    parser.add_argument("--seeds", type=bounded_int(MAX_SEEDS), default=seeds, metavar="N",
                        help=f"chip realisations, seeds 0..N-1 (default {seeds})")
    parser.add_argument("--max-tokens", type=bounded_int(MAX_TOKENS), default=max_tokens, metavar="N",
                        help="LMs: score only the first N held-out tokens; N must be a whole "
                             "number of evaluation windows (256 tokens, or the model's context if "
                             "shorter) (default: "
                             + ("the whole split)" if max_tokens is None else f"{max_tokens})"))


def check_max_tokens(max_tokens: int | None, loaded_model) -> None:
    """--max-tokens is honoured exactly: whole evaluation windows, at least one."""
    if max_tokens is None or loaded_model.family != "gpt2":
        return
    from simulator.accuracy.lm import EVAL_WINDOW_TOKENS
    window = min(EVAL_WINDOW_TOKENS, loaded_model.model.config.n_positions)
    if max_tokens < window:
        raise UserError(f"--max-tokens: expected at least the {window}-token evaluation window of "
                        f"{loaded_model.name} (a multiple of it), got {max_tokens}")
    if max_tokens % window:
        low, high = max(window, max_tokens - max_tokens % window), max_tokens - max_tokens % window + window
        raise UserError(f"--max-tokens: expected a multiple of the {window}-token evaluation "
                        f"window of {loaded_model.name} (at least {window}; e.g. {low} or {high}), "
                        f"got {max_tokens}")
    from simulator.accuracy.lm import lm_eval_set
    available = int(lm_eval_set(loaded_model).targets.size)
    if max_tokens > available:
        raise UserError(f"--max-tokens: the held-out split has {available} tokens in whole "
                        f"{window}-token windows; give at most {available} or leave it out, "
                        f"got {max_tokens}")


def load_model_checked(name: str, flag: str = "--model"):
    """The model's weights, after checking that its config's dimensions fit in memory."""
    from simulator.commands.memory import check_checkpoint_memory
    from workloads.registry import load_model
    check_checkpoint_memory(name, flag)
    return load_model(name)


def check_timing_args(args, hw, workload: str, mapping, parallel: int = 1, *, one_of_many: bool = False) -> None:
    """The workload's context window, the mapping and the task graph's memory, before any timing
    run. `one_of_many`: `hw` is one point of a sweep, where a mapping may fit some points only
    (then the points that it does not fit report that, and memory is not estimated here)."""
    from simulator.commands.memory import check_timing_memory
    from simulator.mapping.resolve import resolve_mapping
    from simulator.run import default_phase
    from workloads.registry import build_graph
    phase = args.phase or default_phase(workload)
    build_graph(workload, phase, batch=args.batch, seq=args.seq, new_tokens=args.new_tokens)  # positions
    try:
        resolve_mapping(workload, hw, mapping)  # a bad mapping file, or one that does not fit
    except UserError:
        if not one_of_many:
            raise
        return
    check_timing_memory(hw, workload, phase, mapping, parallel=parallel, **graph_kwargs(args))


def graph_kwargs(args) -> dict:
    return dict(batch=args.batch, seq=args.seq, new_tokens=args.new_tokens,
                chunk_tokens=args.chunk_tokens)


def chunk_tokens_arg(text: str) -> int | str | None:
    """--chunk-tokens: a positive integer, 'auto' or 'none' (one chunk)."""
    if text in ("auto", "none"):
        return None if text == "none" else text
    try:
        value = positive_int(text)
    except (UserError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"expected a positive integer, auto or none, got {text!r}") from None
    if value > MAX_TOKENS:
        raise argparse.ArgumentTypeError(f"expected a positive integer <= {MAX_TOKENS}, auto or none, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: argparse names the flag in the message ("--seeds: expected ...")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def non_negative_int(flag: str, maximum: int = 2 ** 32 - 1):
    """argparse type: an integer in 0..maximum (seeds: numpy takes 0..2^32-1), named by `flag`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = -1
        if not 0 <= value <= maximum:
            raise UserError(f"{flag}: expected an integer in 0..{maximum}, got {text!r}")
        return value
    return parse


def bounded_int(maximum: int):
    """argparse type: a positive integer no larger than `maximum`."""
    def parse(text: str) -> int:
        value = positive_int(text)
        if value > maximum:
            raise argparse.ArgumentTypeError(f"expected a positive integer <= {maximum}, got {text!r}")
        return value
    parse.__name__ = "positive integer"
    return parse


def finite_float(flag: str, low: float = -math.inf, *, above: bool = False, high: float = math.inf):
    """argparse type: a finite number >= low (> low with `above`) and <= high, named by `flag`."""
    bound = (f"> {low:g}" if above else f">= {low:g}") if math.isfinite(low) else ""
    bound += (" and " if bound else "") + f"<= {high:g}" if math.isfinite(high) else ""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < low or (above and value == low) or value > high:
            raise UserError(f"{flag}: expected a finite number{' ' + bound if bound else ''}, got {text!r}")
        return value
    return parse


def write_json_atomic(path: str, payload: dict) -> None:
    """Write JSON next to its destination first, so a crash never leaves half a file."""
    text = json.dumps(_finite(payload), indent=2, default=_jsonable, allow_nan=False)
    with atomic_output(path, ".json") as tmp, open(tmp, "w") as f:
        f.write(text + "\n")


def _jsonable(value):
    if hasattr(value, "tolist"):
        return _finite(value.tolist())
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _finite(value):
    """Standard JSON has no Infinity or NaN: they become null (inputs that cause them are
    refused at load; this guards what is left, e.g. a ratio over a zero)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
