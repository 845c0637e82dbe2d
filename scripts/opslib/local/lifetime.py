"""Processes the local runtime starts die with the driver, however it ends.

`die_with_parent()` runs in a child (a poller at its start, the emulator before it executes): on Linux the
kernel sends the child SIGTERM when the thread that started it ends — the driver's main thread, or a
supervisor's — even when the driver is SIGKILLed and runs no cleanup. Elsewhere it is a no-op (the driver's
own `finally` blocks and signal handlers still stop them on Ctrl-C, SIGTERM and normal exits).
"""

from __future__ import annotations

import ctypes
import signal

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> bool:
    """Ask for SIGTERM when the parent thread ends; False where the platform has no prctl."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)) == 0
    except (OSError, AttributeError):
        return False
