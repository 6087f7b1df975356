"""Object storage for the local runtime: the store protocol, its SQLite implementation, the home folder and
the single-controller lock."""

from rollouts.store.home import database_path, rollouts_home
from rollouts.store.lock import HomeLock, LockHeld
from rollouts.store.protocol import (
    AlreadyExists,
    Change,
    Conflict,
    Expired,
    Invalid,
    NotFound,
    ObjectStore,
    Revision,
    StoreError,
)
from rollouts.store.sqlite import SQLiteStore

__all__ = [
    "AlreadyExists",
    "Change",
    "Conflict",
    "Expired",
    "HomeLock",
    "Invalid",
    "LockHeld",
    "NotFound",
    "ObjectStore",
    "Revision",
    "SQLiteStore",
    "StoreError",
    "database_path",
    "rollouts_home",
]
