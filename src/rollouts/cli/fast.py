"""The fast path of `rollouts get rollout NAME`: answered without loading typer (and the pydantic it pulls
in) when the command line is exactly that verb with its plain flags; anything else goes to the full CLI."""

from __future__ import annotations

import sys

_ROLLOUT = {"rollout", "rollouts", "ro", "rollout.argoproj.io", "rollouts.argoproj.io"}


def _parse(argv: list[str]) -> tuple[str, str | None, str | None, bool] | None:
    """(name, namespace, home, no_color) for `get rollout NAME [-n NS] [--home H] [--no-color]`, else None."""
    if len(argv) < 2 or argv[0] != "get":
        return None
    rest = argv[1:]
    names: list[str] = []
    namespace = home = None
    no_color = False
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg == "--no-color":
            no_color = True
        elif arg in ("-n", "--namespace", "--home") and i + 1 < len(rest):
            if arg == "--home":
                home = rest[i + 1]
            else:
                namespace = rest[i + 1]
            i += 1
        elif arg.startswith("--namespace="):
            namespace = arg.split("=", 1)[1]
        elif arg.startswith("--home="):
            home = arg.split("=", 1)[1]
        elif arg.startswith("-"):
            return None
        else:
            names.append(arg)
        i += 1
    if len(names) == 1 and "/" in names[0]:
        names = names[0].split("/", 1)
    if len(names) != 2 or names[0].lower() not in _ROLLOUT or not names[1]:
        return None
    return names[1], namespace, home, no_color


def run_fast(argv: list[str]) -> int | None:
    """Exit code when handled here, None to fall back to the full CLI."""
    parsed = _parse(argv)
    if parsed is None:
        return None
    import os

    from rollouts.cli.show import rollout_text, use_color
    from rollouts.store.home import database_path, rollouts_home
    from rollouts.store.sqlite import SQLiteStore

    name, namespace, home, no_color = parsed
    ns = namespace or os.environ.get("ROLLOUTS_NAMESPACE") or "default"
    store = SQLiteStore(database_path(rollouts_home(home)))
    try:
        sys.stdout.write(rollout_text(store, ns, name, use_color(no_color)))
    except LookupError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0
