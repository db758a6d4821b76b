"""`aimcsim hw CONFIG`: load and validate a hardware config and print its headline figures."""
from __future__ import annotations

from simulator.commands.common import write_json_atomic
from simulator.hw.loader import load_hw, parse_overrides
from simulator.hw.summary import format_summary, summarize


def add_parser(sub) -> None:
    parser = sub.add_parser("hw", help="validate a hardware config and print peak TOPS, TOPS/W, capacity")
    parser.add_argument("config", help="preset name (hermes64, alpine, analog_fabric, digital) or YAML path")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set analog.tiles=128 (repeatable)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.set_defaults(func=run)


def run(args) -> int:
    hw = load_hw(args.config, parse_overrides(args.set))
    summary = summarize(hw)
    print(format_summary(summary))
    if args.json:
        write_json_atomic(args.json, summary)
    return 0
