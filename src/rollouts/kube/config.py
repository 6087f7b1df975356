"""Which Kubernetes cluster a client talks to, and with which credentials: kubeconfig resolution.

Order (controller-runtime's `GetConfig`, plus our local-cluster fallback):
1. `--kubeconfig FILE` (must exist);
2. `$KUBECONFIG`, a colon-separated list merged as kubectl merges it: missing files are skipped, the first
   file that defines a cluster/user/context name wins for that name, the first `current-context` wins;
3. in-cluster service-account config, when `KUBERNETES_SERVICE_HOST` is set and the token file exists;
4. `~/.kube/config`;
5. the local cluster's kubeconfig in the rollouts home (`--home`, `$ROLLOUTS_HOME`, `~/.rollouts`), written
   by `rollouts cluster up` with context `rollouts-local`.
`--context` picks a context instead of `current-context`; `-n` overrides the context's namespace, which
defaults to `default` (in a pod, the service account's namespace).

The CLI adds one rule before 3 (`rollouts.cli.connection`): an explicit `--home` or `$ROLLOUTS_HOME`
with no `--kubeconfig`/`$KUBECONFIG` (and no `--context` naming another context) selects that home's
local cluster, whatever `~/.kube/config` says; that local cluster is started when it is down.

The result, `ClusterConfig`, carries the server, TLS material and credentials, builds an `ssl.SSLContext`
for the standard-library transport and a `lightkube.KubeConfig` for lightkube (imported lazily).
"""

from __future__ import annotations

import base64
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from lightkube import KubeConfig

LOCAL_CONTEXT = "rollouts-local"  # the context name cluster/apiserver/kubeconfig.py writes
LOCAL_KUBECONFIG = "kubeconfig"  # its file name in the rollouts home
HOME_ENV = "ROLLOUTS_HOME"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")

NO_CLUSTER = "no cluster configured: run `rollouts cluster up` or set KUBECONFIG"


class ConfigError(Exception):
    """The kubeconfig cannot be resolved: no file, unknown context, missing cluster or user, bad field."""


@dataclass
class ClusterConfig:
    """A resolved connection: where the API server is, how to trust it and how to authenticate."""

    server: str
    namespace: str = "default"
    context: str = ""
    source: str = ""  # the file(s) or "in-cluster" it came from, for `version`/`doctor`
    ca_data: bytes | None = None  # PEM
    ca_file: str | None = None
    insecure: bool = False
    token: str | None = None
    token_file: str | None = None  # re-read on every use: service-account tokens rotate
    client_cert_data: bytes | None = None
    client_key_data: bytes | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None
    username: str | None = None
    password: str | None = None
    _temp_files: list[str] = field(default_factory=list, repr=False)

    @property
    def is_local(self) -> bool:
        return self.context == LOCAL_CONTEXT

    def bearer_token(self) -> str | None:
        if self.token_file:
            try:
                return Path(self.token_file).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"context {self.context!r}: cannot read tokenFile {self.token_file}: {exc}") from exc
        return self.token

    def auth_headers(self) -> dict[str, str]:
        token = self.bearer_token()
        if token:
            return {"Authorization": f"Bearer {token}"}
        if self.username is not None:
            raw = f"{self.username}:{self.password or ''}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        return {}

    def ssl_context(self) -> ssl.SSLContext:
        if self.ca_data is not None or self.ca_file:
            # The cluster names its own CA: trust only it, and skip loading the system's CA bundle (a
            # noticeable share of a CLI command's start-up).
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        else:
            context = ssl.create_default_context()
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif self.ca_data is not None:
            context.load_verify_locations(cadata=self.ca_data.decode())
        elif self.ca_file:
            context.load_verify_locations(cafile=self.ca_file)
        cert, key = self._client_cert_files()
        if cert:
            context.load_cert_chain(cert, key)
        return context

    def _client_cert_files(self) -> tuple[str | None, str | None]:
        # ssl only loads client certificates from files; inline data goes to private temp files once.
        cert, key = self.client_cert_file, self.client_key_file
        if self.client_cert_data is not None:
            cert = self._private_temp(self.client_cert_data)
        if self.client_key_data is not None:
            key = self._private_temp(self.client_key_data)
        return cert, key

    def _private_temp(self, data: bytes) -> str:
        import tempfile  # rarely needed: not on every command's start-up path

        fd, path = tempfile.mkstemp(prefix="rollouts-kube-", suffix=".pem")  # 0600 by mkstemp
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        self._temp_files.append(path)
        return path

    def describe(self) -> str:
        """One line naming the cluster in use, e.g. for `rollouts version` and `rollouts doctor`."""
        where = f"context {self.context}" if self.context else "in-cluster service account"
        return f"{where} ({self.server}, namespace {self.namespace}) from {self.source}"

    def to_lightkube(self) -> KubeConfig:
        """The same connection as a lightkube `KubeConfig` (lightkube is imported only here)."""
        from lightkube import KubeConfig

        cluster: dict[str, Any] = {"server": self.server}
        if self.insecure:
            cluster["insecure-skip-tls-verify"] = True
        elif self.ca_data is not None:
            cluster["certificate-authority-data"] = base64.b64encode(self.ca_data).decode()
        elif self.ca_file:
            cluster["certificate-authority"] = self.ca_file
        user: dict[str, Any] = {}
        token = None if self.token_file else self.bearer_token()
        if self.token_file:
            user["tokenFile"] = self.token_file  # lightkube re-reads it: rotated tokens keep working
        elif token:
            user["token"] = token
        elif self.username is not None:
            user["username"], user["password"] = self.username, self.password or ""
        cert, key = self._client_cert_files()
        if cert:
            user["client-certificate"] = cert
        if key:
            user["client-key"] = key
        name = self.context or "in-cluster"
        return KubeConfig.from_dict({
            "clusters": [{"name": name, "cluster": cluster}],
            "users": [{"name": name, "user": user}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": self.namespace}}],
            "current-context": name,
        })


def local_kubeconfig_path(home: str | os.PathLike[str] | None = None) -> Path:
    """HOME/kubeconfig of the rollouts home (`--home`, else $ROLLOUTS_HOME, else ~/.rollouts)."""
    chosen = home or os.environ.get(HOME_ENV) or Path.home() / ".rollouts"
    return Path(chosen).expanduser() / LOCAL_KUBECONFIG


def load_config(
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    namespace: str | None = None,
    home: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
) -> ClusterConfig:
    """Resolve the cluster to use with the rules in the module docstring; `ConfigError` when there is none."""
    env = os.environ if env is None else env
    if kubeconfig is not None:
        path = Path(kubeconfig).expanduser()
        if not path.is_file():
            raise ConfigError(f"--kubeconfig {path}: no such file")
        return _from_files([path], context, namespace)
    listed = [Path(p).expanduser() for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        present = [p for p in listed if p.is_file()]
        if not present:
            raise ConfigError(f"KUBECONFIG={env['KUBECONFIG']}: none of these files exists; {NO_CLUSTER}")
        return _from_files(present, context, namespace)
    if env.get("KUBERNETES_SERVICE_HOST") and (service_account_dir / "token").is_file() and context is None:
        return _in_cluster(env, namespace, service_account_dir)
    user_config = Path(env.get("HOME") or Path.home()).expanduser() / ".kube" / "config"
    if user_config.is_file():
        return _from_files([user_config], context, namespace)
    local = local_kubeconfig_path(home if home is not None else env.get(HOME_ENV))
    if local.is_file():
        return _from_files([local], context, namespace)
    raise ConfigError(NO_CLUSTER)


def cluster_in_use(**options: Any) -> str:
    """Which cluster a client would use, as one line, or why there is none (never raises)."""
    try:
        return load_config(**options).describe()
    except ConfigError as exc:
        return str(exc)


def _in_cluster(env: Mapping[str, str], namespace: str | None, sa_dir: Path) -> ClusterConfig:
    host, port = env["KUBERNETES_SERVICE_HOST"], env.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6 service address
    ns_file = sa_dir / "namespace"
    own_ns = ns_file.read_text().strip() if ns_file.is_file() else "default"
    ca = sa_dir / "ca.crt"
    return ClusterConfig(server=f"https://{host}:{port}", namespace=namespace or own_ns, context="",
                         source=f"in-cluster ({sa_dir})", ca_file=str(ca) if ca.is_file() else None,
                         token_file=str(sa_dir / "token"))


def _named(doc: Mapping[str, Any], section: str, path: Path) -> list[tuple[str, dict[str, Any]]]:
    entries = doc.get(section) or []
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: {section} must be a list of {{name, {section[:-1]}}} entries")
    out = []
    for n, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise ConfigError(f"{path}: {section}[{n}].name must be a string")
        body = entry.get(section[:-1]) or {}
        if not isinstance(body, Mapping):
            raise ConfigError(f"{path}: {section}[{n}].{section[:-1]} must be a mapping")
        out.append((entry["name"], _absolute_paths(dict(body), path.parent)))
    return out


_PATH_FIELDS = ("certificate-authority", "client-certificate", "client-key", "tokenFile")


def _absolute_paths(body: dict[str, Any], base: Path) -> dict[str, Any]:
    # kubectl resolves relative file references against the directory of the kubeconfig that names them.
    for key in _PATH_FIELDS:
        value = body.get(key)
        if isinstance(value, str) and value and not os.path.isabs(value):
            body[key] = str((base / Path(value).expanduser()).resolve())
    return body


def _merge(paths: list[Path]) -> tuple[dict[str, dict[str, dict[str, Any]]], str | None]:
    merged: dict[str, dict[str, dict[str, Any]]] = {"clusters": {}, "users": {}, "contexts": {}}
    current: str | None = None
    for path in paths:
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read kubeconfig: {exc}") from exc
        if not isinstance(doc, Mapping):
            raise ConfigError(f"{path}: a kubeconfig must be a mapping (apiVersion: v1, kind: Config)")
        for section in merged:
            for name, body in _named(doc, section, path):
                merged[section].setdefault(name, body)  # the first file to define a name wins
        if current is None and doc.get("current-context"):
            current = str(doc["current-context"])
    return merged, current


def _decode(value: Any, where: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except ValueError as exc:
        raise ConfigError(f"{where}: not valid base64") from exc


def _from_files(paths: list[Path], context: str | None, namespace: str | None) -> ClusterConfig:
    merged, current = _merge(paths)
    source = os.pathsep.join(str(p) for p in paths)
    name = context or current
    if not name:
        raise ConfigError(f"{source}: no current-context and no --context given (contexts: "
                          f"{', '.join(sorted(merged['contexts'])) or 'none'})")
    ctx = merged["contexts"].get(name)
    if ctx is None:
        raise ConfigError(f'{source}: context "{name}" does not exist (valid: '
                          f"{', '.join(sorted(merged['contexts'])) or 'none'})")
    cluster = merged["clusters"].get(str(ctx.get("cluster", "")))
    if cluster is None:
        raise ConfigError(f'{source}: contexts["{name}"].cluster "{ctx.get("cluster")}" is not among clusters '
                          f"({', '.join(sorted(merged['clusters'])) or 'none'})")
    if not isinstance(cluster.get("server"), str) or not cluster["server"]:
        raise ConfigError(f'{source}: clusters["{ctx.get("cluster")}"].server is missing')
    user = merged["users"].get(str(ctx.get("user", ""))) or {}
    if "exec" in user or "auth-provider" in user:
        raise ConfigError(f'{source}: users["{ctx.get("user")}"] uses an exec/auth-provider plugin, which is not '
                          "supported; use a token, tokenFile or client certificate")
    where = f'{source}: clusters["{ctx.get("cluster")}"]'
    uwhere = f'{source}: users["{ctx.get("user")}"]'
    return ClusterConfig(
        server=str(cluster["server"]).rstrip("/"),
        namespace=namespace or str(ctx.get("namespace") or "default"),
        context=name,
        source=source,
        ca_data=_decode(cluster["certificate-authority-data"], f"{where}.certificate-authority-data")
        if cluster.get("certificate-authority-data") else None,
        ca_file=cluster.get("certificate-authority"),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        token=user.get("token"),
        token_file=None if user.get("token") else user.get("tokenFile"),
        client_cert_data=_decode(user["client-certificate-data"], f"{uwhere}.client-certificate-data")
        if user.get("client-certificate-data") else None,
        client_key_data=_decode(user["client-key-data"], f"{uwhere}.client-key-data")
        if user.get("client-key-data") else None,
        client_cert_file=user.get("client-certificate"),
        client_key_file=user.get("client-key"),
        username=user.get("username"),
        password=user.get("password"),
    )
