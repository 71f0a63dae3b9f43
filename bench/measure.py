"""Runs one command and records its wall time and peak memory: a fresh, small parent per run.

    python bench/measure.py RESULT.json -- COMMAND [ARG ...]

The command inherits stdout and stderr. RESULT.json gets `wall_s` (from start to exit),
`cpu_s` (user and system time of the process and the children it waited for: above `wall_s`
when it used more than one core), `max_rss_kib` (the command's peak resident set, from
wait4's rusage: the largest of the process and those children) and `returncode`. Standard
library only, so any Python runs it.
Measuring from this small process rather than from the harness keeps the harness's own
memory out of the figure (a child's peak RSS counts what it had before exec).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def measure(command: list[str]) -> dict[str, float | int]:
    """Runs `command` to its end; returns its wall and CPU time, peak RSS and exit code."""
    start = time.perf_counter()
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return {
        "wall_s": round(wall, 4),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 4),
        "max_rss_kib": int(usage.ru_maxrss),
        "returncode": process.returncode,
    }


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 3 or args[1] != "--":
        sys.exit("usage: measure.py RESULT.json -- COMMAND [ARG ...]")
    result = measure(args[2:])
    Path(args[0]).write_text(json.dumps(result))
    sys.exit(0 if result["returncode"] == 0 else 1)


if __name__ == "__main__":
    main()
