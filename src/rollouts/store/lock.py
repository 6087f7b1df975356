"""The single-controller guard: an exclusive flock on `<home>/controller.lock` that records its holder's pid.

flock locks belong to the open file, so the kernel drops them when the holder exits for any reason
(including SIGKILL); a stale lock file therefore never blocks a new controller.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

LOCK_FILE = "controller.lock"


class LockHeld(Exception):
    """Another live process holds the controller lock of this home folder."""

    def __init__(self, pid: int | None, home: Path) -> None:
        self.pid, self.home = pid, home
        who = f"pid {pid}" if pid is not None else "pid unknown"
        super().__init__(f"another controller ({who}) is running on {home}; stop it first")


class HomeLock:
    """Exclusive, non-blocking lock of a home folder; use as a context manager or acquire()/release()."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.path = self.home / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> HomeLock:
        if self._fd is not None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = self._holder_pid(fd)
            os.close(fd)
            raise LockHeld(pid, self.home) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            # Clear the pid first so nobody reads a stale one; the file itself stays (unlinking races).
            os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    @staticmethod
    def _holder_pid(fd: int) -> int | None:
        # The holder writes its pid just after locking; give it a moment if we caught it in between.
        deadline = time.monotonic() + 0.5
        while True:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            if text.isdigit():
                return int(text)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

    def __enter__(self) -> HomeLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.release()
