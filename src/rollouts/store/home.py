"""Where local state lives: the rollouts home folder (database, lock file) and how it is chosen."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "ROLLOUTS_HOME"
DATABASE_FILE = "state.db"


def rollouts_home(explicit: str | None = None) -> Path:
    """The home folder: `--home`, else $ROLLOUTS_HOME, else ~/.rollouts; created private (0700) if absent."""
    chosen = explicit or os.environ.get(HOME_ENV) or "~/.rollouts"
    home = Path(chosen).expanduser().absolute()
    if home.exists() and not home.is_dir():
        raise NotADirectoryError(
            f"rollouts home {home} exists but is not a folder; pass --home with a folder"
        )
    if not home.exists():
        home.mkdir(parents=True, mode=0o700, exist_ok=True)
        # mkdir's mode is filtered by the umask; the database may hold secrets, so insist on 0700.
        home.chmod(0o700)
    return home


def database_path(home: Path) -> Path:
    """The SQLite file of the local store inside a home folder."""
    return home / DATABASE_FILE
