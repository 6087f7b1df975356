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

TYPE_CHECKING = False
if TYPE_CHECKING:
    from rollouts.store.sqlite import SQLiteStore


def __getattr__(name: str) -> object:
    # Imported on first use only: clients of the Kubernetes API import this package's protocol and never
    # need the SQLite implementation (nor the sqlite3 module).
    if name == "SQLiteStore":
        from rollouts.store.sqlite import SQLiteStore

        return SQLiteStore
    raise AttributeError(name)

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
