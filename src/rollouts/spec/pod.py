"""Pod templates: the container fields the runtimes use are typed; the rest of Kubernetes' PodSpec is
accepted by name (so real manifests load) and kept as given."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from rollouts.spec.base import LooseModel, Model
from rollouts.spec.intorstr import IntOrStr
from rollouts.spec.meta import ObjectMeta


class HTTPHeader(Model):
    name: str
    value: str


class HTTPGetAction(Model):
    path: str | None = None
    port: IntOrStr
    host: str | None = None
    scheme: str | None = None
    http_headers: list[HTTPHeader] | None = None


class TCPSocketAction(Model):
    port: IntOrStr
    host: str | None = None


class ExecAction(Model):
    command: list[str] | None = None


class GRPCAction(Model):
    port: int
    service: str | None = None


class Probe(Model):
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    exec: ExecAction | None = None
    grpc: GRPCAction | None = None
    initial_delay_seconds: int | None = None
    period_seconds: int | None = None
    timeout_seconds: int | None = None
    success_threshold: int | None = None
    failure_threshold: int | None = None
    termination_grace_period_seconds: int | None = None


class EnvVar(Model):
    name: str
    value: str | None = None
    value_from: dict[str, Any] | None = None


class ContainerPort(Model):
    name: str | None = None
    container_port: int
    protocol: str | None = None
    host_port: int | None = None
    host_ip: str | None = Field(default=None, alias="hostIP")


class Container(Model):
    name: str
    image: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    env: list[EnvVar] | None = None
    env_from: list[dict[str, Any]] | None = None
    ports: list[ContainerPort] | None = None
    readiness_probe: Probe | None = None
    liveness_probe: Probe | None = None
    startup_probe: Probe | None = None
    working_dir: str | None = None
    # Kubernetes' resource quantities and the rest are kept verbatim: the local runtime does not use them
    # and a strict model would reject manifests Kubernetes accepts.
    resources: dict[str, Any] | None = None
    image_pull_policy: str | None = None
    lifecycle: dict[str, Any] | None = None
    resize_policy: list[dict[str, Any]] | None = None
    restart_policy: str | None = None
    security_context: dict[str, Any] | None = None
    stdin: bool | None = None
    stdin_once: bool | None = None
    termination_message_path: str | None = None
    termination_message_policy: str | None = None
    tty: bool | None = None
    volume_devices: list[dict[str, Any]] | None = None
    volume_mounts: list[dict[str, Any]] | None = None


class PodSpec(Model):
    containers: list[Container] = Field(default_factory=list)
    init_containers: list[Container] | None = None
    ephemeral_containers: list[dict[str, Any]] | None = None
    termination_grace_period_seconds: int | None = None
    restart_policy: str | None = None
    active_deadline_seconds: int | None = None
    affinity: dict[str, Any] | None = None
    automount_service_account_token: bool | None = None
    dns_config: dict[str, Any] | None = None
    dns_policy: str | None = None
    enable_service_links: bool | None = None
    host_aliases: list[dict[str, Any]] | None = None
    host_ipc: bool | None = Field(default=None, alias="hostIPC")
    host_network: bool | None = None
    host_pid: bool | None = Field(default=None, alias="hostPID")
    host_users: bool | None = None
    hostname: str | None = None
    image_pull_secrets: list[dict[str, Any]] | None = None
    node_name: str | None = None
    node_selector: dict[str, str] | None = None
    os: dict[str, Any] | None = None
    overhead: dict[str, Any] | None = None
    preemption_policy: str | None = None
    priority: int | None = None
    priority_class_name: str | None = None
    readiness_gates: list[dict[str, Any]] | None = None
    resource_claims: list[dict[str, Any]] | None = None
    resources: dict[str, Any] | None = None
    runtime_class_name: str | None = None
    scheduler_name: str | None = None
    scheduling_gates: list[dict[str, Any]] | None = None
    security_context: dict[str, Any] | None = None
    service_account: str | None = None
    service_account_name: str | None = None
    set_hostname_as_fqdn: bool | None = Field(default=None, alias="setHostnameAsFQDN")
    share_process_namespace: bool | None = None
    subdomain: str | None = None
    tolerations: list[dict[str, Any]] | None = None
    topology_spread_constraints: list[dict[str, Any]] | None = None
    volumes: list[dict[str, Any]] | None = None


class PodTemplateSpec(Model):
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: PodSpec = Field(default_factory=PodSpec)


class JobSpec(LooseModel):
    """batch/v1 JobSpec: the job provider runs its pod template's containers as processes locally."""

    template: PodTemplateSpec = Field(default_factory=PodTemplateSpec)
    backoff_limit: int | None = None
    active_deadline_seconds: int | None = None
    ttl_seconds_after_finished: int | None = None
    parallelism: int | None = None
    completions: int | None = None
