"""Output files that never destroy: every writer in aimcsim goes through `atomic_output`.

A regular file is written next to its destination and renamed onto it, so no reader (and
no resumed run) ever sees half a file and a failed write leaves nothing behind. What the
rename would destroy is never renamed over:

- a symlink is written through: the file it points to is replaced, the link stays;
- `-`, `/dev/stdout`, a device node or a fifo is written directly, in one piece, after the
  whole output was produced in a private temporary file.

Temporary files carry the writer's process id (`.NAME.aimcsim-PID-HEX.tmp.EXT`); they are
removed on every exit path (the CLI turns SIGTERM into an exception, so `finally` runs),
and ones left by a killed process are deleted by the next write to the same target.
`check_output_paths` validates destinations before any computation starts.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import sys
import tempfile
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

from simulator.errors import UserError

STDOUT = "-"
_TMP_TAG = "aimcsim"
# stdout of the process before the CLI sent its human-readable text to stderr (see cli.py)
data_stdout = None


@dataclass(frozen=True)
class OutputFormat:
    """What an output flag writes: a name for messages and the file endings that say so."""

    name: str
    suffixes: tuple[str, ...]


JSON = OutputFormat("JSON", (".json",))
HDF5 = OutputFormat("HDF5", (".h5", ".hdf5"))
YAML = OutputFormat("YAML", (".yaml", ".yml"))
PLOT = OutputFormat("plot", (".png", ".svg", ".pdf"))
SAFETENSORS = OutputFormat("safetensors", (".safetensors",))


def is_stream(path) -> bool:
    """True for targets written directly: `-`, /dev/stdout and other descriptor paths, device
    nodes, fifos, sockets (a regular file, also one under /dev/shm, is renamed onto)."""
    text = str(path)
    if text == STDOUT or writes_stdout(text):
        return True
    absolute = os.path.abspath(text)
    if re.match(r"^/(dev/fd|proc/self/fd|proc/\d+/fd)/\d+$", absolute) or absolute in ("/dev/stderr",):
        return True  # an open descriptor, whatever it points to: never renamed over
    try:
        mode = os.stat(absolute).st_mode  # follows symlinks: a link to a fifo is a fifo
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def writes_stdout(path) -> bool:
    return str(path) in (STDOUT, "/dev/stdout", "/proc/self/fd/1", "/dev/fd/1")


def check_output_paths(outputs) -> None:
    """Fail before any work on outputs that cannot be written.

    `outputs`: (flag, path or None, OutputFormat) triples. Checks: the extension matches the
    format, the path is not a folder, its folder exists and accepts a new file, and no two
    outputs share a path (through symlinks too).
    """
    seen: dict[str, str] = {}
    for flag, path, fmt in outputs:
        if path is None:
            continue
        text = str(path)
        if not text:
            raise UserError(f"{flag}: expected a file name, got ''")
        stream = is_stream(text)
        key = "<stdout>" if writes_stdout(text) else os.path.realpath(text)
        if key in seen:
            raise UserError(f"{seen[key]} and {flag}: both write {text}; give each its own file")
        seen[key] = flag
        if stream:
            if text != STDOUT and not os.path.exists(text):
                raise UserError(f"{flag} {text}: does not exist")
            continue
        if os.path.isdir(text):
            raise UserError(f"{flag} {text}: is a folder; give a file name")
        if not text.lower().endswith(fmt.suffixes):
            raise UserError(f"{flag} {text}: expected a file ending in {', '.join(fmt.suffixes)} "
                            f"(it writes {fmt.name})")
        _check_writable(flag, text)


def _check_writable(flag: str, path: str) -> None:
    real = os.path.realpath(path)
    if os.path.islink(real):  # what realpath leaves a link is a loop of links
        raise UserError(f"{flag} {path}: is a loop of symbolic links; give a file name")
    if os.path.isdir(real):
        raise UserError(f"{flag} {path}: is a folder; give a file name")
    folder = os.path.dirname(real)
    if not os.path.isdir(folder):
        raise UserError(f"{flag} {path}: folder {folder} does not exist")
    probe = os.path.join(folder, f".{os.path.basename(real)}.{_TMP_TAG}-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{flag} {path}: cannot write in folder {folder}: "
                        f"{exc.strerror or exc}") from None


@contextmanager
def atomic_output(path, suffix: str = ""):
    """Yield a temporary path; on success move its content to `path`, else delete it.

    The writer creates the temporary file itself, so it gets the usual permissions. OS
    errors (read-only file system, a folder at the path, no space) become one-line
    UserErrors naming `path`.
    """
    if is_stream(path):
        with _direct_output(path, suffix) as tmp:
            yield tmp
        return
    target = os.path.realpath(path)  # write through a symlink instead of replacing it
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise UserError(f"{path}: folder {folder} does not exist")
    if os.path.isdir(target):
        raise UserError(f"{path}: is a folder; give a file name")
    remove_stale_temporaries(target)
    base = os.path.basename(target)
    tmp = os.path.join(folder, f".{base}.{_TMP_TAG}-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{suffix}")
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as exc:
        raise UserError(f"{path}: cannot write: {_os_reason(exc)}") from None
    finally:
        _unlink_quietly(tmp)


@contextmanager
def _direct_output(path, suffix: str):
    """Produce the output in a private temporary file, then copy it into the stream."""
    fd, tmp = tempfile.mkstemp(prefix=f"{_TMP_TAG}-", suffix=suffix)
    os.close(fd)
    os.unlink(tmp)  # the writer creates it, like in the rename case
    try:
        yield tmp
        with open(tmp, "rb") as source:
            if writes_stdout(path):
                sink = data_stdout if data_stdout is not None else sys.stdout
                sink.flush()
                shutil.copyfileobj(source, sink.buffer)
                sink.flush()
            else:
                with open(path, "wb") as sink:
                    shutil.copyfileobj(source, sink)
    except OSError as exc:
        raise UserError(f"{path}: cannot write: {_os_reason(exc)}") from None
    finally:
        _unlink_quietly(tmp)


_STALE = re.compile(rf"\.{_TMP_TAG}-(\d+)-[0-9a-f]+\.tmp")
_OLD_STYLE = re.compile(r"\.[0-9a-f]{12}\.tmp")  # written before temporaries carried a pid


def remove_stale_temporaries(target: str) -> int:
    """Delete temporaries of `target` whose writing process no longer runs; their count."""
    folder, base = os.path.split(target)
    prefix = f".{base}."
    removed = 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix) - 1:]
        match = _STALE.match(rest)
        stale = (match is not None and not _process_alive(int(match.group(1)))) or \
            _OLD_STYLE.match(rest) is not None
        if stale and _unlink_quietly(os.path.join(folder, name)):
            removed += 1
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _unlink_quietly(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except OSError:
        return False


def _os_reason(exc: OSError) -> str:
    """The short reason of an OSError (h5py wraps errno texts in long messages)."""
    if exc.strerror:
        return exc.strerror
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    errno_match = re.search(r"errno = (\d+)", text)
    if errno_match:
        return os.strerror(int(errno_match.group(1)))
    return text
