"""The object-store protocol every client of the Kubernetes API shares (errors, changes, revisions), the home
folder and the single-controller lock. The local cluster's SQLite implementation is rollouts.cluster.store."""

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
    "StoreError",
    "database_path",
    "rollouts_home",
]
