"""What a local process costs: resident memory and CPU time from /proc, and the stack's own pids.

Used by the benchmark (bench/run) and bench/idle_memory.py. Each figure covers the process and its
descendants, since a service instance is a gunicorn master with its worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from petition_devtools.processes import REPO


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def rss_kib(pid: int) -> int:
    """VmRSS of a process and all its descendants, in KiB (0 for a process that is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        kids = _children(pid)
    except OSError:
        return 0
    own = sum(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return own + sum(rss_kib(c) for c in kids)


def cpu_seconds(pid: int, children: bool = True) -> float:
    """User + system CPU time of a process (and its descendants) so far, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        kids = _children(pid) if children else []
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return own + sum(cpu_seconds(c) for c in kids)


def stack_pids() -> dict[str, int]:
    """The running local Kafka and FerretDB (deploy/local/stack.py status): name -> pid."""
    out = subprocess.run(
        [sys.executable, str(REPO / "deploy" / "local" / "stack.py"), "status"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    pids = {}
    for line in out.strip().splitlines():
        parts = line.split("\t")
        if len(parts) >= 4 and parts[1] == "ready":
            pids[parts[0]] = int(parts[3].removeprefix("pid="))
    return pids
