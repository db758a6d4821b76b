"""Flags and small helpers shared by several subcommands, so they read and behave alike."""
from __future__ import annotations

import json

from simulator.atomic import atomic_output
from simulator.errors import UserError
from simulator.hw.loader import load_hw, parse_overrides


def add_hw_args(parser, default: str | None = None) -> None:
    parser.add_argument("--hw", default=default, required=default is None,
                        help="hardware config: preset name (hermes64, alpine, analog_fabric, digital) "
                             "or YAML path" + (f" (default {default})" if default else ""))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set analog.tiles=128 (repeatable)")


def load_hw_arg(args):
    return load_hw(args.hw, parse_overrides(args.set) if args.set else None)


def add_workload_args(parser, default_workload: str) -> None:
    parser.add_argument("--workload", default=default_workload,
                        help="gpt2, gpt2-medium/-large/-xl, mobilebert, bert-base, gpt2-pydoc "
                             f"(embedded), minilm, or a checkpoint folder (default {default_workload})")
    add_phase_args(parser)
    parser.add_argument("--new-tokens", type=positive_int, default=16,
                        help="tokens generated in the decode phase (default 16)")
    parser.add_argument("--batch", type=positive_int, default=1, help="batch size (default 1)")
    parser.add_argument("--chunk-tokens", type=positive_int, default=None,
                        help="tokens per task chunk for pipelining (default: whole sequence)")


def add_phase_args(parser) -> None:
    """--phase and --tokens: which pass of the model is timed, over how many tokens."""
    parser.add_argument("--phase", choices=("prefill", "decode", "encoder"),
                        help="default: prefill for GPT-2, encoder for BERT-family models")
    parser.add_argument("--tokens", "--seq", dest="seq", type=positive_int, default=128,
                        help="prompt / sequence length in tokens (default 128)")


EMBEDDED_MODEL = "gpt2-pydoc"


def add_accuracy_args(parser, *, times: str, times_help: str, seeds: int, max_tokens: int | None = None) -> None:
    """--model, --t, --seeds, --max-tokens: the functional-run flags of accuracy, profile, search."""
    parser.add_argument("--model", default=EMBEDDED_MODEL,
                        help=f"gpt2-pydoc (embedded), minilm, or a checkpoint folder (default {EMBEDDED_MODEL})")
    parser.add_argument("--t", default=times,
                        help=f"{times_help}: plain seconds or a number with a unit s, min, h, d, w, "
                             f"mo, y (e.g. 1h, 1d, 1mo, 10y; default {times})")
    parser.add_argument("--seeds", type=positive_int, default=seeds,
                        help=f"chip realisations, seeds 0..N-1 (default {seeds})")
    parser.add_argument("--max-tokens", type=positive_int, default=max_tokens,
                        help="LMs: score only the first N held-out tokens (default: "
                             + ("the whole split)" if max_tokens is None else f"{max_tokens})"))


def graph_kwargs(args) -> dict:
    return dict(batch=args.batch, seq=args.seq, new_tokens=args.new_tokens,
                chunk_tokens=args.chunk_tokens)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UserError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise UserError(f"expected a positive integer, got {text!r}")
    return value


def write_json_atomic(path: str, payload: dict) -> None:
    """Write JSON next to its destination first, so a crash never leaves half a file."""
    with atomic_output(path, ".json") as tmp, open(tmp, "w") as f:
        json.dump(payload, f, indent=2, default=_jsonable)
        f.write("\n")


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
