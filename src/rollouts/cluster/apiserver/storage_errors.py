"""Storage failures of the SQLite store as Kubernetes `Status` answers, chosen the way kube-apiserver answers
etcd failures:

- the store locked by another writer past its busy timeout: 504 `Timeout` (kube-apiserver's answer when
  etcd does not complete a request in time), with `details.retryAfterSeconds`;
- the disk (or the database's page limit) full: 500 `InternalError` (kube-apiserver's answer to etcd's
  "mvcc: database space exceeded"), the message naming the cause;
- any other SQLite error (I/O error, read-only file, corruption): 500 `InternalError` naming it.

Every message says that the request was not applied (the store's transaction rolled back) and whether a
retry can succeed, so clients (the operator, the CLI) retry rather than give up or assume success."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from rollouts.cluster.apiserver.errors import ApiError

RETRY_AFTER_SECONDS = 1


def _code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None  # the primary code, without extended bits


def storage_error(exc: sqlite3.Error, path: Path | str) -> ApiError:
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    code = _code(exc)
    retry = {"retryAfterSeconds": RETRY_AFTER_SECONDS}
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in lowered or "busy" in lowered:
        return ApiError(504, "Timeout", f"Timeout: the store {path} is locked by another writer ({text}); "
                        "the request was not applied: retry", retry)
    if code == sqlite3.SQLITE_FULL or "disk is full" in lowered:
        return ApiError(500, "InternalError", f"Internal error occurred: the store {path} is full ({text}); "
                        "the request was not applied: it can succeed once space is freed", retry)
    return ApiError(500, "InternalError", f"Internal error occurred: storage error in {path}: {text}; "
                    "the request was not applied")
