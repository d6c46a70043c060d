"""Istio as the gateway controller, installed as upstream KubeRay CI does: ``istioctl install --set profile=minimal``.

Istio deploys one Envoy Deployment and Service (``<gateway>-istio``) per Gateway,
so unlike Traefik there is no single port to publish once. The host reaches a
Gateway through ``kubectl port-forward`` to that Service, started when the
suites first ask for the Gateway's URL and stopped with the session.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_kuberay._support.apply import apply_manifests
from pytest_kuberay._support.processes import ManagedProcess, run_tool
from pytest_kuberay._support.waiting import wait_for
from pytest_kuberay.errors import ProviderError
from pytest_kuberay.install.gateway import gateway_class
from pytest_kuberay.install.traefik_helm import gateway_class_accepted
from pytest_kuberay.providers.base import ClusterHandle
from pytest_kuberay.providers.namespaces import MANAGED_SELECTOR

__all__ = [
    "ISTIOCTL_MISSING",
    "ISTIO_CONTROLLER",
    "KUBECTL_MISSING",
    "IstioGateway",
    "PortForward",
    "istio_install_argv",
    "istio_service_name",
    "istioctl_binary",
    "newest_gateway",
    "parse_forwarded_port",
]

log = logging.getLogger(__name__)

ISTIO_CONTROLLER = "istio.io/gateway-controller"
ISTIOCTL_MISSING = (
    "istioctl not found on PATH: install it (https://istio.io/latest/docs/setup/additional-setup/"
    "download-istio-release/) to use GatewayClass istio on kind, or pass --kuberay-gateway-class=traefik"
)
KUBECTL_MISSING = "kubectl not found on PATH: it is needed to port-forward to Istio's per-Gateway Service"
_FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) ->")


def istioctl_binary() -> str:
    istioctl = shutil.which("istioctl")
    if istioctl is None:
        raise ProviderError(ISTIOCTL_MISSING)
    return istioctl


def istio_install_argv(istioctl: str, kubeconfig: Path, context: str | None = None) -> list[str]:
    argv = [istioctl, "install", "--set", "profile=minimal", "-y", "--kubeconfig", str(kubeconfig)]
    return argv + (["--context", context] if context else [])


def istio_service_name(gateway: str, class_name: str = "istio") -> str:
    """Istio names a Gateway's Deployment and Service ``<gateway>-<gatewayClassName>``."""
    return f"{gateway}-{class_name}"


def parse_forwarded_port(output: str) -> int | None:
    match = _FORWARDING.search(output)
    return int(match.group(1)) if match else None


def _programmed(gateway: dict[str, Any]) -> bool:
    conditions = {c["type"]: c["status"] for c in (gateway.get("status") or {}).get("conditions", [])}
    return conditions.get("Programmed") == "True"


def newest_gateway(cluster: ClusterHandle, class_name: str) -> tuple[str, str] | None:
    """(namespace, name) of the newest Programmed Gateway of ``class_name`` in a namespace pytest-kuberay made.

    The suites' ``gateway_url`` carries no namespace; one test runs at a time per
    session, so its RayService's Gateway is the newest one of ours.
    """
    ours = {ns.metadata.name for ns in cluster.core.list_namespace(
        label_selector=MANAGED_SELECTOR).items}
    items = cluster.custom.list_cluster_custom_object("gateway.networking.k8s.io", "v1", "gateways")["items"]
    candidates = [g for g in items if g["metadata"]["namespace"] in ours
                  and g["spec"].get("gatewayClassName") == class_name and _programmed(g)]
    if not candidates:
        return None
    newest = max(candidates, key=lambda g: g["metadata"].get("creationTimestamp") or "")
    return str(newest["metadata"]["namespace"]), str(newest["metadata"]["name"])


@dataclass
class PortForward:
    """``kubectl port-forward svc/<name> :<port>`` on 127.0.0.1; the local port is what kubectl picked."""

    kubeconfig: Path
    context: str | None
    namespace: str
    service: str
    remote_port: int
    log_path: Path
    process: ManagedProcess | None = None
    local_port: int | None = None

    def start(self, timeout: float = 30.0) -> int:
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            raise ProviderError(KUBECTL_MISSING)
        argv = [kubectl, "--kubeconfig", str(self.kubeconfig), *(["--context", self.context] if self.context else []),
                "port-forward", "--address", "127.0.0.1", "-n", self.namespace, f"svc/{self.service}",
                f":{self.remote_port}"]
        self.log_path.unlink(missing_ok=True)  # a stale "Forwarding from" line must not be read as ours
        process = self.process = ManagedProcess(f"port-forward-{self.service}", argv, self.log_path).start()
        what = f"kubectl port-forward to {self.namespace}/svc/{self.service}:{self.remote_port}"
        deadline = time.monotonic() + timeout
        while self.local_port is None:
            with contextlib.suppress(OSError):
                self.local_port = parse_forwarded_port(self.log_path.read_text(errors="replace"))
            if self.local_port is not None:
                break
            if not process.alive():
                raise ProviderError(f"{what} failed: {process.describe_exit()}")
            if time.monotonic() > deadline:
                self.stop()
                raise ProviderError(f"{what} printed no local port within {timeout:.0f}s; see {self.log_path}")
            time.sleep(0.2)
        log.info("port-forward 127.0.0.1:%s -> %s/svc/%s:%d", self.local_port, self.namespace, self.service,
                 self.remote_port)
        return self.local_port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.local_port}"

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(grace=2.0)
            self.process = None


class IstioGateway:
    """Istio minimal profile (istiod only); each Gateway gets its own Envoy, reached by a port-forward."""

    def __init__(self, cluster: ClusterHandle, run_dir: Path, class_name: str = "istio") -> None:
        self.cluster = cluster
        self.run_dir = run_dir
        self.class_name = class_name
        self._forwards: dict[tuple[str, str], PortForward] = {}

    def _istiod_ready(self) -> bool:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            deployment = client.AppsV1Api(self.cluster.api_client).read_namespaced_deployment("istiod", "istio-system")
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return bool(deployment.status and (deployment.status.available_replicas or 0) >= 1)

    def install(self, timeout: float = 600.0) -> None:
        if self._istiod_ready():
            log.info("istiod already running in istio-system: not reinstalling Istio")
        else:
            argv = istio_install_argv(istioctl_binary(), self.cluster.kubeconfig, self.cluster.context)
            log.info("$ %s", " ".join(argv[1:]))
            run_tool(argv, "istioctl install --set profile=minimal", timeout)
        try:  # istiod creates GatewayClass istio itself once the Gateway API CRDs exist
            wait_for(lambda: gateway_class_accepted(self.cluster, self.class_name), lambda why: why, timeout=60,
                     description=f"GatewayClass {self.class_name} created by istiod", show=str)
        except ProviderError:
            log.info("istiod did not create GatewayClass %s; applying it", self.class_name)
            apply_manifests(self.cluster.dynamic, [gateway_class(self.class_name, ISTIO_CONTROLLER)])
            wait_for(lambda: gateway_class_accepted(self.cluster, self.class_name), lambda why: why,
                     timeout=timeout, description=f"GatewayClass {self.class_name} Accepted by istiod", show=str)

    def url_for(self, namespace: str, gateway: str) -> str:
        """A port-forward to the Gateway's Envoy Service, reused while it lives."""
        key = (namespace, gateway)
        forward = self._forwards.get(key)
        if forward is not None and forward.alive():
            return forward.url
        service = istio_service_name(gateway, self.class_name)
        forward = PortForward(self.cluster.kubeconfig, self.cluster.context, namespace, service, 80,
                              self.run_dir / f"port-forward-{namespace}-{service}.log")
        forward.start()
        self._forwards[key] = forward
        return forward.url

    @property
    def url(self) -> str:
        """The URL of the newest Gateway of ours; port-forwards to Gateways since deleted are stopped."""
        found = wait_for(lambda: newest_gateway(self.cluster, self.class_name), lambda f: f is not None,
                         timeout=120, interval=1.0, show=str,
                         description=f"a Programmed Gateway of class {self.class_name} in a pytest-kuberay namespace")
        assert found is not None
        for key in [k for k in self._forwards if k != found]:
            self._forwards.pop(key).stop()
        return self.url_for(*found)

    def stop(self) -> None:
        for forward in self._forwards.values():
            forward.stop()
        self._forwards.clear()
