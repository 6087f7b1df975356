"""The process a Job's container runs under: `python job_runner.py STATUS_FILE STDERR_FILE ARGV...` runs ARGV
(exec'd directly, no shell), waits for it and writes its exit status to STATUS_FILE (JSON, written
atomically). The job's stderr goes both to the runner's own stderr (the pod's log, which `kubectl logs`
reads) and to STDERR_FILE (whose tail becomes the Job's failure message); stdout is passed through as is.

Why a runner: the local cluster restarted while a job runs finds the job again (its state folder in the
home) but is not its parent, so it could not learn the job's exit code; the runner keeps it in a file.
Standard library only, run by path, so it starts in milliseconds. SIGTERM reaches the job through the
process group; the runner ignores it and outlives the job to record how it ended."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from typing import IO

# After the job exits, how long its stderr may still drain (a grandchild holding the pipe open must not
# keep the runner, and so the Job, waiting).
DRAIN_SECONDS = 1.0


def _write(path: str, status: dict[str, object]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(status, handle)
    os.replace(tmp, path)


def _pump(source: IO[bytes], copy: IO[bytes]) -> None:
    fd = source.fileno()
    try:
        while chunk := os.read(fd, 65536):
            os.write(2, chunk)
            copy.write(chunk)
            copy.flush()
    except (OSError, ValueError):
        return  # the runner is closing the copy after the drain time: the rest is not waited for


def main(argv: list[str]) -> int:
    if len(argv) < 4:
        print("usage: job_runner.py STATUS_FILE STDERR_FILE COMMAND [ARG...]", file=sys.stderr)
        return 2
    status_path, stderr_path, command = argv[1], argv[2], argv[3:]
    # A handler (not SIG_IGN, which the job would inherit): exec resets it to the default in the child.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    with open(stderr_path, "ab") as copy:
        try:
            child = subprocess.Popen(command, stderr=subprocess.PIPE)
        except (OSError, ValueError) as exc:  # ValueError: a NUL byte in an argument
            errno = getattr(exc, "errno", None) or 0
            _write(status_path, {"errno": errno, "error": getattr(exc, "strerror", None) or str(exc)})
            return 127
        assert child.stderr is not None
        pump = threading.Thread(target=_pump, args=(child.stderr, copy), daemon=True)
        pump.start()
        code = child.wait()
        pump.join(DRAIN_SECONDS)
    _write(status_path, {"code": code})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
