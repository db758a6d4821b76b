"""The `aimcsim` command. Each subcommand lives in simulator/commands/<name>.py and
exposes `add_parser(subparsers)` (which sets `func`) ; user errors become one line."""
from __future__ import annotations

import argparse
import importlib
import sys

from simulator.errors import UserError

COMMANDS = ("run", "compare", "hw", "accuracy", "profile", "search", "sweep", "train", "program")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other user error
        raise UserError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="aimcsim", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
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
    argv = sys.argv[1:] if argv is None else argv
    try:
        parser = build_parser()
        args = parser.parse_args(argv or ["run"])
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"aimcsim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aimcsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        sys.stderr = None
        return 0


if __name__ == "__main__":
    sys.exit(main())
