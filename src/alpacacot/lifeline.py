"""Worker processes that die with the process that started them.

A build killed with SIGKILL (or by the OOM killer) runs no cleanup code, so it cannot stop its
workers; without this they would go on writing into the output folder, unlocked and unrecorded.
On Linux the kernel does it: `prctl(PR_SET_PDEATHSIG, SIGKILL)` has the worker killed the moment
its parent dies. Elsewhere (and for the moment between the worker's start and that call),
`parent_alive()` notices that the worker was re-parented, and the worker stops at its next
progress report.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_parent: int | None = None


def die_with_parent(build_pid: int) -> None:
    """Call first thing in a worker process; `build_pid` is the pid of the build that started it.

    Exits at once when that build is already gone."""
    global _parent
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            log.debug("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    # The parent is the build itself (fork, spawn) or a fork server that ends with the build.
    _parent = os.getppid()
    if _parent == 1 or not pid_alive(build_pid):
        os._exit(1)


def parent_alive() -> bool:
    """False once the process that started this worker is gone (this one was re-parented)."""
    return _parent is None or os.getppid() == _parent


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
