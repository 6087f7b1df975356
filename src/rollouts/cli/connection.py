"""Which cluster one CLI invocation talks to, and the `KubeStore` on it.

Selection (see `rollouts.kube.config` for the kubeconfig rules themselves):
- `--kubeconfig FILE` or `$KUBECONFIG`: that kubeconfig (with `--context`); never auto-started;
- an explicit `--home` or `$ROLLOUTS_HOME` (and no `--context` naming another context): that home's
  local cluster, even when `~/.kube/config` exists, so a home chosen on purpose is the one used;
- otherwise the usual chain (in-cluster, `~/.kube/config`), then the local cluster of `~/.rollouts`.
When the choice is a local cluster whose server is not recorded as running, it is started in the
background (runtime on) and one note goes to stderr.

Kept free of typer so the fast path of `rollouts get rollout NAME` can use it; the cluster package
(which imports aiohttp) is imported only when a local cluster has to be started.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rollouts.kube.config import LOCAL_CONTEXT, ClusterConfig, ConfigError, load_config, local_kubeconfig_path

if TYPE_CHECKING:
    from rollouts.kube.client import KubeStore

# The file `rollouts.cluster.apiserver.server` records its pid and port in (tests check they agree).
STATE_FILE = "apiserver.json"
HOME_ENV = "ROLLOUTS_HOME"


@dataclass
class Selection:
    """The cluster options of one invocation: the root callback's, overridden by a verb's own."""

    kubeconfig: str | None = None
    context: str | None = None


selected = Selection()  # reset by the root callback on every invocation


def remember(kubeconfig: str | None = None, context: str | None = None, *, reset: bool = False) -> None:
    global selected
    if reset:
        selected = Selection()
    if kubeconfig is not None:
        selected.kubeconfig = kubeconfig
    if context is not None:
        selected.context = context


def local_home(home: str | os.PathLike[str] | None, kubeconfig: str | None, context: str | None,
               env: dict[str, str] | None = None) -> Path | None:
    """The home whose local cluster the rules choose outright, or None when a kubeconfig decides."""
    env = dict(os.environ) if env is None else env
    if kubeconfig is not None or env.get("KUBECONFIG"):
        return None
    if context is not None and context != LOCAL_CONTEXT:
        return None
    chosen = home or env.get(HOME_ENV)
    if not chosen:
        return None
    from rollouts.store.home import rollouts_home

    return rollouts_home(str(chosen))


def recorded_running(home: Path) -> bool:
    """Whether HOME's API server is recorded as running by a live process (no network round trip)."""
    try:
        pid = int(json.loads((home / STATE_FILE).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if pid == os.getpid():
        return True  # a test serving the API from a thread of this process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def ensure_local(home: Path) -> None:
    """Start HOME's local cluster in the background (runtime on) unless it is recorded as running."""
    if recorded_running(home) and local_kubeconfig_path(home).is_file():
        return
    from rollouts.cluster.apiserver.server import start_background, status

    if status(home) is not None and local_kubeconfig_path(home).is_file():
        return  # running after all (its pid is not ours to signal, say): nothing was started
    running = start_background(home)
    print(f"started the local cluster at {running.url}; rollouts cluster down stops it", file=sys.stderr)


def resolve(home: str | os.PathLike[str] | None = None, namespace: str | None = None,
            kubeconfig: str | None = None, context: str | None = None) -> ClusterConfig:
    """The `ClusterConfig` of the cluster in use, starting the home's local cluster when it is chosen and
    down. `ConfigError` when a kubeconfig cannot be read; RuntimeError when the local cluster fails to start."""
    kubeconfig = kubeconfig if kubeconfig is not None else selected.kubeconfig
    context = context if context is not None else selected.context
    local = local_home(home, kubeconfig, context)
    if local is not None:
        ensure_local(local)
        return load_config(local_kubeconfig_path(local), context, namespace)
    try:
        config = load_config(kubeconfig, context, namespace)
    except ConfigError:
        if kubeconfig is not None or os.environ.get("KUBECONFIG") or context is not None:
            raise
        config = None  # nothing configured at all: the default home's local cluster
    if config is not None and config.source != str(local_kubeconfig_path(None)):
        return config
    from rollouts.store.home import rollouts_home

    default = rollouts_home(None)  # created only now that its local cluster is the one in use
    ensure_local(default)
    return load_config(local_kubeconfig_path(default), context, namespace)


def connect(home: str | os.PathLike[str] | None = None, namespace: str | None = None,
            kubeconfig: str | None = None, context: str | None = None) -> KubeStore:
    from rollouts.kube.client import KubeStore

    return KubeStore(resolve(home, namespace, kubeconfig, context))


def in_use(home: str | os.PathLike[str] | None = None) -> str:
    """One line naming the cluster this invocation would use, without starting anything."""
    kubeconfig, context = selected.kubeconfig, selected.context
    local = local_home(home, kubeconfig, context)
    if local is not None:
        path = local_kubeconfig_path(local)
        if not path.is_file():
            return f"the local cluster of {local} (not started yet: the first command starts it)"
        from rollouts.kube.config import cluster_in_use

        state = "" if recorded_running(local) else " (not running: the first command starts it)"
        return cluster_in_use(kubeconfig=path, context=context) + state
    from rollouts.kube.config import cluster_in_use

    if kubeconfig is None and context is None and not os.environ.get("KUBECONFIG"):
        try:
            load_config()
        except ConfigError:  # nothing configured: the verbs would start the default home's local cluster
            return f"the local cluster of {local_kubeconfig_path(None).parent} (not started yet: the first " \
                   "command starts it)"
    return cluster_in_use(kubeconfig=kubeconfig, context=context)
