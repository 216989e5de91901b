"""Run one command and report its own CPU time and peak RSS: `python bench/child.py OUT CMD…`.

Why a launcher: Linux charges a process's `ru_maxrss` with the RSS high-water mark of the memory
it had before its `exec` (`exec_mmap` keeps the old mm's peak), and a child forked (or vforked)
by Python starts with its parent's memory. So `wait4` on a command the benchmark spawned reported
at least the benchmark's own RSS: with the 200,000-product truth loaded (~410 MiB) a crawl that
peaked at 216 MiB was reported as 512 MiB. This launcher is a bare Python (~10 MiB, only the
standard library), so the command's `ru_maxrss` is the command's own unless it stays below that.

OUT receives one JSON object: `cpu_seconds` (user + sys of the command and the children it
waited for), `peak_rss_kib` and `exit_code`. The launcher exits with the command's exit code.
Kill the launcher's process group (it shares it with the command) to stop both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def main(argv: list[str]) -> int:
    """Run `argv[1:]`, write its rusage to `argv[0]`, return its exit code."""
    out, command = argv[0], argv[1:]
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    report = {
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_kib": usage.ru_maxrss,
        "exit_code": code,
    }
    with open(out, "w") as sink:
        json.dump(report, sink)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
