"""Atomic output files: every writer in aimcsim goes through `atomic_output`, so no reader
(and no resumed run) ever sees half a file, and a failed write leaves nothing behind."""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager

from simulator.errors import UserError


@contextmanager
def atomic_output(path, suffix: str = ""):
    """Yield a temporary path next to `path`; on success rename it onto `path`, else delete it.

    The writer creates the temporary file itself, so it gets the usual permissions.
    """
    target = os.path.abspath(path)
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise UserError(f"{path}: folder {folder} does not exist")
    tmp = os.path.join(folder, f".{os.path.basename(target)}.{uuid.uuid4().hex[:12]}.tmp{suffix}")
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
