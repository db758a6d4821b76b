"""`aimcsim hw CONFIG`: load and validate a hardware config and print its headline figures."""
from __future__ import annotations

from simulator.atomic import JSON
from simulator.commands.common import add_set_arg, check_outputs, presets_help, write_json_atomic, wrote
from simulator.hw.loader import load_hw, parse_overrides
from simulator.hw.summary import format_summary, summarize


def add_parser(sub) -> None:
    parser = sub.add_parser("hw", help="validate a hardware config and print peak TOPS, TOPS/W, capacity",
                            description=__doc__.split("\n")[0].replace("`", ""))
    parser.add_argument("config", metavar="CONFIG",
                        help=f"a preset name ({presets_help()}) or a YAML path (keys: docs/hwconfigs.md)")
    add_set_arg(parser)
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON (.json; - for stdout)")
    parser.set_defaults(func=run)


def run(args) -> int:
    check_outputs(("--json", args.json, JSON))
    hw = load_hw(args.config, parse_overrides(args.set))
    summary = summarize(hw)
    print(format_summary(summary))
    if args.json:
        write_json_atomic(args.json, summary)
        wrote(args.json)
    return 0
