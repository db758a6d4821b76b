"""Shared pytest setup: the `slow` marker is deselected by default (see pyproject.toml)."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def interrupt_cli(argv: list[str], after_s: float = 20.0) -> tuple[int, str]:
    """Run `aimcsim argv` in its own process group, send the whole group SIGINT after
    `after_s` (as a terminal's Ctrl-C does, workers included) and return (exit code, stderr)."""
    import signal
    import subprocess
    import sys
    import time
    process = subprocess.Popen([sys.executable, "-m", "simulator.cli", *argv],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(after_s)  # past interpreter start-up even on a loaded machine
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=120)
    return process.returncode, err.decode()
