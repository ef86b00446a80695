"""Run one command and report its own wall time, CPU time and peak RSS as a JSON line.

    python -S -I bench/launch.py REPORT TIMEOUT -- COMMAND...

Why a launcher: Linux charges a process that calls exec with the peak RSS of the memory it
replaced, so a program started straight from the benchmark (tens or hundreds of MiB once it has
run the in-process sink scenario) reported the benchmark's RSS, not its own. Started from this
small process (no site, stdlib only: about 8 MiB), a program's peak is its own. The report goes
to the file REPORT; the command's output and exit status are its own; after TIMEOUT seconds it
is killed.
"""

import json
import os
import subprocess
import sys
import threading
import time


def main() -> int:
    report, timeout, separator, *argv = sys.argv[1:]
    if separator != "--" or not argv:
        print("usage: launch.py REPORT TIMEOUT -- COMMAND...", file=sys.stderr)
        return 2
    began = time.perf_counter()
    proc = subprocess.Popen(argv)
    watchdog = threading.Timer(float(timeout), proc.kill)
    watchdog.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)  # this very child's usage
    finally:
        watchdog.cancel()
    wall = time.perf_counter() - began
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    with open(report, "w") as out:
        cpu = usage.ru_utime + usage.ru_stime
        json.dump({"exit": code, "wall": wall, "cpu": cpu, "maxrss_kib": usage.ru_maxrss}, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
