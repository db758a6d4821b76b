"""Reading YAML written by people: every way a file can be wrong is one `UserError` line.

`read_yaml_file` is used for hardware configs and mapping files. Beyond PyYAML's
SafeLoader it
- refuses a duplicate key, naming both lines (PyYAML silently keeps the last one),
- refuses binary files, UTF-16/32 text and invalid UTF-8 with what to do instead,
- refuses files over `MAX_YAML_BYTES` and nesting deeper than `MAX_DEPTH` (PyYAML's
  composer recurses and would hit Python's recursion limit),
- reads `1e-9` as a float (YAML 1.1 insists on `1.0e-9`).
"""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from simulator.errors import UserError

MAX_YAML_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64  # far beyond any config (hardware configs nest 3 deep)


class SafeLoader(yaml.SafeLoader):
    """SafeLoader with float exponents and duplicate-key detection."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
            first_line: dict = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    raise yaml.constructor.ConstructorError(
                        None, None, "a mapping key must be a plain value", key_node.start_mark) from None
                line = key_node.start_mark.line + 1
                if key in first_line:
                    raise DuplicateKey(key, first_line[key], line)
                first_line[key] = line
        return super().construct_mapping(node, deep=deep)


SafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


class DuplicateKey(Exception):
    def __init__(self, key, first_line: int, line: int):
        super().__init__(f"duplicate key {key!r} at lines {first_line} and {line}; keep one")


def load_text(text: str, origin: str):
    """Parse YAML text; errors name `origin` and the line."""
    depth = _max_depth(text)
    if depth > MAX_DEPTH:
        raise UserError(f"{origin}: nesting {depth} levels deep; at most {MAX_DEPTH} are allowed")
    try:
        return yaml.load(text, Loader=SafeLoader)
    except DuplicateKey as exc:
        raise UserError(f"{origin}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0] or "invalid YAML"
        raise UserError(f"{origin}: YAML syntax error{line}: {problem}") from None
    except RecursionError:  # nesting the depth scan cannot see (e.g. aliases of aliases)
        raise UserError(f"{origin}: nested too deeply to read") from None


def decode(data: bytes, origin: str) -> str:
    """UTF-8 text of a file's bytes, or a UserError saying what the file is instead."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(data) > 1 and b"\x00" in data[:2]
                                                       and data.count(b"\x00") > len(data) // 4):
        raise UserError(f"{origin}: is UTF-16 or UTF-32 text; save it as UTF-8")
    if b"\x00" in data:
        raise UserError(f"{origin}: is a binary file, not YAML text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{origin}: is not UTF-8 text (byte {exc.start}: "
                        f"{data[exc.start:exc.start + 1]!r}); save it as UTF-8") from None


def read_yaml_file(path, origin: str | None = None):
    """The parsed content of a YAML file (None for an empty one)."""
    origin = origin or str(path)
    path = Path(path)
    try:
        if path.is_dir():
            raise UserError(f"{origin}: is a folder, not a YAML file")
        with open(path, "rb") as f:
            data = f.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise UserError(f"{origin}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_YAML_BYTES:
        raise UserError(f"{origin}: larger than {MAX_YAML_BYTES // (1024 * 1024)} MiB; not a config file")
    return load_text(decode(data, origin), origin)


def _max_depth(text: str) -> int:
    """An upper estimate of the nesting depth: open flow brackets or indentation steps."""
    depth = flow = 0
    for char in text:
        if char in "[{":
            flow += 1
            depth = max(depth, flow)
        elif char in "]}":
            flow = max(0, flow - 1)
    indents = sorted({len(line) - len(line.lstrip(" -")) for line in text.splitlines() if line.strip()})
    return max(depth, len(indents))
