"""aimcsim: latency, energy and accuracy of transformers on analog in-memory computing accelerators.

Each subcommand lives in simulator/commands/<name>.py and exposes `add_parser(subparsers)`
(which sets `func`). Bad input of any kind (a flag, a YAML key, a file) is one line on
stderr and exit code 2; Ctrl-C is exit 130 and SIGTERM exit 143, both without a traceback
and without leaving temporary files behind.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys

from simulator import __version__, atomic
from simulator.errors import UserError

COMMANDS = ("run", "compare", "hw", "accuracy", "profile", "search", "sweep")
DESCRIPTION = ("aimcsim: a cycle-level simulator of heterogeneous analog in-memory computing "
               "accelerators (crossbar tiles, digital cores, NoC, DRAM). It answers how fast, how "
               "much energy and how accurate a transformer is on a given chip. With no command it "
               "runs `aimcsim run` on the embedded model.")
EPILOG = "Run `aimcsim COMMAND --help` for the flags of one command, with their defaults and units."
OUTPUT_FLAGS = ("json", "trace", "h5", "out", "plot", "pareto_plot")  # attributes that name outputs
current_argv: list[str] | None = None  # the command line being run, recorded in output files


class Terminated(BaseException):
    """SIGTERM, raised where the process is so that `finally` blocks remove temporary files."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other user error
        if message.startswith("argument "):  # "argument --seeds: ...": the flag alone reads better
            raise UserError(message.removeprefix("argument "))
        raise UserError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="aimcsim", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"aimcsim {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND",
                                title="commands")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"simulator.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"simulator.commands.{name}":
                raise
            continue  # command not built yet
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    global current_argv
    from_command_line = argv is None
    argv = sys.argv[1:] if argv is None else argv
    current_argv = list(argv)
    previous = _install_sigterm()
    try:
        parser = build_parser()
        args = parser.parse_args(argv or ["run"])
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        with _text_to_stderr_if_data_on_stdout(args):
            return int(args.func(args) or 0)
    except UserError as exc:
        print(f"aimcsim: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError:  # sizes are bounded per key, but their product can still be too much
        print("aimcsim: error: out of memory; use fewer --tokens, --batch or --new-tokens, larger "
              "--chunk-tokens, or a smaller config", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aimcsim: interrupted", file=sys.stderr)
        if from_command_line:  # a second Ctrl-C while Dask shuts down must not dump a traceback
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        return 130
    except Terminated:
        print("aimcsim: terminated", file=sys.stderr)
        return 143
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        sys.stderr = None
        return 0
    finally:
        _restore_sigterm(previous)


@contextlib.contextmanager
def _text_to_stderr_if_data_on_stdout(args):
    """`--json -` puts the JSON alone on stdout: the human-readable text goes to stderr."""
    if not any(atomic.writes_stdout(getattr(args, flag, None) or "") for flag in OUTPUT_FLAGS):
        yield
        return
    atomic.data_stdout = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        atomic.data_stdout = None


def _raise_terminated(_signum, _frame):
    raise Terminated()


def _install_sigterm():
    try:
        return signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread (e.g. called from a worker): leave it alone
        return None


def _restore_sigterm(previous) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
