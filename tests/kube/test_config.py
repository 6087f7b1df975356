"""Kubeconfig resolution: flags, $KUBECONFIG merging, in-cluster, ~/.kube/config, the local cluster's file."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollouts.kube.config import NO_CLUSTER, ConfigError, cluster_in_use, load_config


def _config(path: Path, contexts: dict[str, tuple[str, str]], current: str | None = None,
            namespace: str | None = None, user: dict[str, Any] | None = None) -> Path:
    """A kubeconfig whose contexts are name -> (cluster name, server)."""
    doc: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": c, "cluster": {"server": s}} for c, s in contexts.values()],
        "users": [{"name": "u", "user": user or {"token": f"token-{path.stem}"}}],
        "contexts": [{"name": n, "context": {"cluster": c, "user": "u", **({"namespace": namespace}
                                                                           if namespace else {})}}
                     for n, (c, _) in contexts.items()],
    }
    if current:
        doc["current-context"] = current
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """An environment with an empty HOME and no KUBECONFIG or service account."""
    return {"HOME": str(tmp_path / "user"), "ROLLOUTS_HOME": str(tmp_path / "rhome")}


def test_kubeconfig_flag_wins_over_env(tmp_path: Path, home: dict[str, str]) -> None:
    flag = _config(tmp_path / "flag.yaml", {"a": ("ca", "https://flag:1")}, "a")
    env = _config(tmp_path / "env.yaml", {"b": ("cb", "https://env:1")}, "b")
    found = load_config(kubeconfig=flag, env={**home, "KUBECONFIG": str(env)})
    assert (found.server, found.context, found.token) == ("https://flag:1", "a", "token-flag")


def test_kubeconfig_flag_missing_file_is_an_error(tmp_path: Path, home: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="--kubeconfig .*nope.yaml: no such file"):
        load_config(kubeconfig=tmp_path / "nope.yaml", env=home)


def test_kubeconfig_env_list_merges_first_wins(tmp_path: Path, home: dict[str, str]) -> None:
    first = _config(tmp_path / "one.yaml", {"shared": ("c1", "https://one:1")})  # no current-context
    second = _config(tmp_path / "two.yaml", {"shared": ("c2", "https://two:1"), "other": ("c3", "https://three:1")},
                     "other", namespace="team")
    env = {**home, "KUBECONFIG": f"{tmp_path / 'missing.yaml'}:{first}:{second}"}
    current = load_config(env=env)
    # current-context comes from the first file that sets one; the "other" context exists only in two.yaml
    assert (current.context, current.server, current.namespace) == ("other", "https://three:1", "team")
    shared = load_config(context="shared", env=env)
    assert shared.server == "https://one:1"  # the first file to define a name wins
    assert shared.token == "token-one"  # user "u" too
    assert load_config(context="shared", namespace="ns1", env=env).namespace == "ns1"


def test_kubeconfig_unknown_context_names_the_valid_ones(tmp_path: Path, home: dict[str, str]) -> None:
    path = _config(tmp_path / "c.yaml", {"a": ("ca", "https://a:1"), "b": ("cb", "https://b:1")}, "a")
    with pytest.raises(ConfigError, match=r'context "zz" does not exist \(valid: a, b\)'):
        load_config(kubeconfig=path, context="zz", env=home)


def test_kubeconfig_env_with_no_existing_file_is_an_error(tmp_path: Path, home: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="none of these files exists"):
        load_config(env={**home, "KUBECONFIG": str(tmp_path / "gone.yaml")})


def test_user_kube_config_then_local_cluster_fallback(tmp_path: Path, home: dict[str, str]) -> None:
    local = _config(Path(home["ROLLOUTS_HOME"]) / "kubeconfig", {"rollouts-local": ("l", "https://127.0.0.1:9")},
                    "rollouts-local")
    found = load_config(env=home)
    assert found.is_local and found.source == str(local)
    assert "context rollouts-local (https://127.0.0.1:9, namespace default)" in cluster_in_use(env=home)
    _config(Path(home["HOME"]) / ".kube" / "config", {"k": ("ck", "https://kube:1")}, "k")
    assert load_config(env=home).server == "https://kube:1"  # ~/.kube/config comes before the local cluster


def test_home_flag_selects_local_kubeconfig(tmp_path: Path, home: dict[str, str]) -> None:
    _config(tmp_path / "other-home" / "kubeconfig", {"rollouts-local": ("l", "https://127.0.0.1:7")},
            "rollouts-local")
    assert load_config(home=tmp_path / "other-home", env=home).server == "https://127.0.0.1:7"


def test_no_cluster_configured_error(home: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(env=home)
    assert str(caught.value) == NO_CLUSTER
    assert cluster_in_use(env=home) == NO_CLUSTER


def test_in_cluster_service_account(tmp_path: Path, home: dict[str, str]) -> None:
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("sa-token-1\n")
    (sa / "namespace").write_text("argo-rollouts")
    (sa / "ca.crt").write_text("not read until used")
    env = {**home, "KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    found = load_config(env=env, service_account_dir=sa)
    assert (found.server, found.namespace, found.ca_file) == ("https://10.0.0.1:443", "argo-rollouts",
                                                              str(sa / "ca.crt"))
    assert found.auth_headers() == {"Authorization": "Bearer sa-token-1"}
    (sa / "token").write_text("sa-token-2")  # projected tokens rotate: read on each use
    assert found.auth_headers() == {"Authorization": "Bearer sa-token-2"}
    assert "in-cluster" in found.describe()
    assert found.to_lightkube().get().user.token_file == str(sa / "token")
    # $KUBECONFIG still wins over the service account
    path = _config(tmp_path / "k.yaml", {"a": ("ca", "https://a:1")}, "a")
    assert load_config(env={**env, "KUBECONFIG": str(path)}, service_account_dir=sa).server == "https://a:1"


@pytest.mark.parametrize("user, message", [
    ({"exec": {"command": "aws"}}, "exec/auth-provider plugin, which is not supported"),
    ({"client-certificate-data": "%%%"}, r'users\["u"\].client-certificate-data: not valid base64'),
], ids=["exec-plugin", "bad-base64"])
def test_kubeconfig_unsupported_user_fields(tmp_path: Path, home: dict[str, str], user: dict[str, Any],
                                            message: str) -> None:
    path = _config(tmp_path / "c.yaml", {"a": ("ca", "https://a:1")}, "a", user=user)
    with pytest.raises(ConfigError, match=message):
        load_config(kubeconfig=path, env=home)


def test_relative_paths_resolve_against_the_kubeconfig_directory(tmp_path: Path, home: dict[str, str]) -> None:
    path = _config(tmp_path / "dir" / "c.yaml", {"a": ("ca", "https://a:1")}, "a",
                   user={"tokenFile": "tok", "client-certificate": "certs/c.pem"})
    (tmp_path / "dir" / "tok").write_text("from-file")
    found = load_config(kubeconfig=path, env=home)
    assert found.client_cert_file == str(tmp_path / "dir" / "certs" / "c.pem")
    assert found.bearer_token() == "from-file"


def test_local_cluster_kubeconfig_reaches_the_server(cluster: Any) -> None:
    found = load_config(env={"HOME": "/nonexistent", "ROLLOUTS_HOME": str(cluster.home)})
    assert found.is_local and found.ca_data is not None
    assert base64.b64encode(found.ca_data)  # inline CA decoded
    from rollouts.kube.client import KubeStore

    with KubeStore(found) as store:
        assert store.get("Namespace", "", "default")["metadata"]["name"] == "default"
    assert found.to_lightkube().current_context == "rollouts-local"
