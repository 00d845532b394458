"""Fault injection for the crash tests: stop this process dead at a named point of the build.

The build calls `fault_point(name)` before each rename and write of its output protocol
(`outdir.py`) and in a worker's progress path. Nothing happens unless the environment asks for it,
which only the tests and `bench/fault_injection.py` do:

- `ALPACACOT_FAULT=NAME[#N][=ACTION]`: at the N-th time (default 1) this process reaches point NAME
  (a shell pattern: `worker.progress.*` is every source's worker),
  `kill` itself with SIGKILL (the default: no cleanup, no `finally`, as a power cut or the OOM
  killer would) or `hang` there (a source that takes forever).
- `ALPACACOT_FAULT_TRACE=FILE`: append `PID NAME` to FILE at every point reached, so that a test
  can list the points of a build, or wait until a worker has reached one.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from fnmatch import fnmatchcase

_hits: Counter[str] = Counter()


def fault_point(name: str) -> None:
    """Mark a point where a crash must leave the output recoverable; see the module docstring."""
    trace = os.environ.get("ALPACACOT_FAULT_TRACE")
    spec = os.environ.get("ALPACACOT_FAULT")
    if not trace and not spec:
        return
    if trace:
        with open(trace, "a", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()} {name}\n")
    if not spec:
        return
    where, _, action = spec.partition("=")
    point, _, nth = where.partition("#")
    if not fnmatchcase(name, point):
        return
    _hits[name] += 1
    if _hits[name] != int(nth or 1):
        return
    if action == "hang":
        while True:
            time.sleep(3600)
    os.kill(os.getpid(), signal.SIGKILL)
