"""The process a `job` metric runs as: `python job_runner.py STATUS_FILE ARGV...` runs ARGV (exec'd
directly, no shell), waits for it and writes its exit status to STATUS_FILE (JSON, written atomically).

Why a runner: a controller restarted while a job runs finds the job again (its pid file in the home) but
is not its parent, so it could not learn the job's exit code; the runner keeps it in a file. Standard
library only, run by path, so it starts in milliseconds. SIGTERM reaches the job through the process
group; the runner ignores it and outlives the job to record how it ended."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys


def _write(path: str, status: dict[str, object]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(status, handle)
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: job_runner.py STATUS_FILE COMMAND [ARG...]", file=sys.stderr)
        return 2
    status_path, command = argv[1], argv[2:]
    # A handler (not SIG_IGN, which the job would inherit): exec resets it to the default in the child.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    try:
        child = subprocess.Popen(command)
    except OSError as exc:
        _write(status_path, {"errno": exc.errno or 0, "error": exc.strerror or str(exc)})
        return 127
    code = child.wait()
    _write(status_path, {"code": code})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
