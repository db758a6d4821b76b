"""Reports of a timing run: the Report itself (build), text table, Chrome trace, HDF5.

`atomic_output` is shared by the writers so that no reader ever sees half a file.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager

from simulator.errors import UserError


@contextmanager
def atomic_output(path, suffix: str):
    """Yield a temporary path next to `path`; on success rename it onto `path`, else delete it."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UserError(f"{path}: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
