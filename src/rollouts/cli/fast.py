"""The fast path of `rollouts get rollout NAME`: answered without loading typer (and the pydantic it pulls
in) when the command line is exactly that verb with its plain flags; anything else goes to the full CLI."""

from __future__ import annotations

import sys

_ROLLOUT = {"rollout", "rollouts", "ro", "rollout.argoproj.io", "rollouts.argoproj.io"}


_VALUED = {"-n": "namespace", "--namespace": "namespace", "--home": "home", "--kubeconfig": "kubeconfig",
           "--context": "context"}


def _parse(argv: list[str]) -> tuple[str, dict[str, str], bool] | None:
    """(name, options, no_color) for `get rollout NAME [-n NS] [--home H] [--kubeconfig F] [--context C]
    [--no-color]`, else None. Options are keyed namespace/home/kubeconfig/context."""
    if len(argv) < 2 or argv[0] != "get":
        return None
    rest = argv[1:]
    names: list[str] = []
    options: dict[str, str] = {}
    no_color = False
    i = 0
    while i < len(rest):
        arg = rest[i]
        flag, eq, value = arg.partition("=")
        if arg == "--no-color":
            no_color = True
        elif arg in _VALUED and i + 1 < len(rest):
            options[_VALUED[arg]] = rest[i + 1]
            i += 1
        elif eq and flag in _VALUED and flag.startswith("--"):
            options[_VALUED[flag]] = value
        elif arg.startswith("-"):
            return None
        else:
            names.append(arg)
        i += 1
    if len(names) == 1 and "/" in names[0]:
        names = names[0].split("/", 1)
    if len(names) != 2 or names[0].lower() not in _ROLLOUT or not names[1]:
        return None
    return names[1], options, no_color


def run_fast(argv: list[str]) -> int | None:
    """Exit code when handled here, None to fall back to the full CLI."""
    parsed = _parse(argv)
    if parsed is None:
        return None
    import os

    from rollouts.cli.connection import connect
    from rollouts.cli.show import rollout_text, use_color
    from rollouts.kube.config import ConfigError
    from rollouts.store.protocol import StoreError

    name, options, no_color = parsed
    ns = options.get("namespace") or os.environ.get("ROLLOUTS_NAMESPACE") or "default"
    try:
        store = connect(options.get("home") or None, None, options.get("kubeconfig"), options.get("context"))
    except (ConfigError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        sys.stdout.write(rollout_text(store, ns, name, use_color(no_color)))
    except LookupError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 1
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0
