"""Maven Central through the machine's `mvn` and the pom beside this file (downloads cached in ~/.m2)."""

from __future__ import annotations

import subprocess
from pathlib import Path

POM = Path(__file__).resolve().parent / "pom.xml"


def mvn(goal: str, *properties: str) -> subprocess.CompletedProcess[str]:
    """Run one goal quietly, without colours; the caller reads returncode, stdout and stderr."""
    return subprocess.run(
        ["mvn", "-q", "-B", "-Dstyle.color=never", "-f", str(POM), goal, *properties],
        capture_output=True,
        text=True,
    )
