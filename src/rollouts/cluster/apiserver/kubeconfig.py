"""The local cluster's credentials: a generated bearer token and the kubeconfig (context `rollouts-local`)
that points clients at the API server, both private files in the rollouts home."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path
from typing import Any

import yaml

CONTEXT = "rollouts-local"
TOKEN_FILE = "apiserver.token"
KUBECONFIG_FILE = "kubeconfig"


def _write_private(path: Path, text: str) -> None:
    # Created 0600 before anything is written, so the token is never readable by others, even briefly.
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)


def api_token(home: Path) -> str:
    """The home's API token, generated on first use and kept across restarts (kubeconfigs stay valid)."""
    path = home / TOKEN_FILE
    if path.exists():
        token = path.read_text().strip()
        if token:
            return token
    token = secrets.token_urlsafe(32)
    _write_private(path, token + "\n")
    return token


def kubeconfig_path(home: Path) -> Path:
    return home / KUBECONFIG_FILE


def kubeconfig_document(server: str, token: str, ca_pem: bytes | None = None,
                        namespace: str = "default") -> dict[str, Any]:
    cluster: dict[str, Any] = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": cluster}],
        "users": [{"name": CONTEXT, "user": {"token": token}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace}}],
        "current-context": CONTEXT,
        "preferences": {},
    }


def write_kubeconfig(home: Path, server: str, token: str, ca_pem: bytes | None = None) -> Path:
    """Write HOME/kubeconfig for `server` (e.g. https://127.0.0.1:6443) and return its path."""
    path = kubeconfig_path(home)
    _write_private(path, yaml.safe_dump(kubeconfig_document(server, token, ca_pem), sort_keys=False))
    return path
