"""Name resolution for pods without a cluster DNS: a per-pod /etc/hosts and a resolv.conf that fails fast.

Each pod's ``/etc/hosts`` maps every Service that has Endpoints to the IPs of its endpoint
pods (ready and not ready, as a headless Service publishing not-ready addresses would):
``<svc>.<ns>.svc.cluster.local``, ``<svc>.<ns>.svc``, ``<svc>.<ns>`` and, inside the same
namespace, ``<svc>``. A ClusterIP Service therefore resolves to its pods, which is right
whenever its port equals the target port (true of KubeRay's Services); there is no
kube-proxy. The file is bind-mounted into the pod, so it is rewritten in place (truncate
and write, never rename) whenever Endpoints change.

``resolv.conf`` points at 127.0.0.1 inside the pod's network namespace, where nothing
listens: lookups of names not in ``/etc/hosts`` fail at once instead of waiting on the
host's nameserver, which pods cannot reach (gRPC's c-ares resolver would otherwise hang).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CLUSTER_DOMAIN",
    "RESOLV_CONF",
    "ServiceDirectory",
    "ServiceEndpoints",
    "endpoints_from_object",
    "render_hosts",
    "write_in_place",
]

CLUSTER_DOMAIN = "cluster.local"
RESOLV_CONF = (
    "# written by the pytest-kuberay node agent: no cluster DNS, fail fast\n"
    "nameserver 127.0.0.1\n"
    "options timeout:1 attempts:1\n"
)


@dataclass(frozen=True)
class ServiceEndpoints:
    """One Service's endpoint addresses: (ip, pod hostname or None) pairs, in a stable order."""

    namespace: str
    name: str
    addresses: tuple[tuple[str, str | None], ...]


def endpoints_from_object(obj: dict[str, Any]) -> ServiceEndpoints:
    """Read a core/v1 Endpoints object: addresses and notReadyAddresses of every subset."""
    meta = obj.get("metadata", {})
    seen: dict[str, str | None] = {}
    for subset in obj.get("subsets") or []:
        for field in ("addresses", "notReadyAddresses"):
            for address in subset.get(field) or []:
                ip = address.get("ip")
                if ip and ip not in seen:
                    seen[ip] = address.get("hostname")
    return ServiceEndpoints(str(meta.get("namespace", "")), str(meta.get("name", "")), tuple(sorted(seen.items())))


def render_hosts(
    *,
    pod_ip: str | None,
    hostname: str,
    namespace: str,
    subdomain: str | None = None,
    services: Iterable[ServiceEndpoints] = (),
    host_aliases: Iterable[dict[str, Any]] = (),
) -> str:
    """The text of one pod's /etc/hosts."""
    lines = [
        "# written by the pytest-kuberay node agent; rewritten when Endpoints change",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
    ]
    if pod_ip:
        names = [hostname]
        if subdomain:
            names.insert(0, f"{hostname}.{subdomain}.{namespace}.svc.{CLUSTER_DOMAIN}")
        lines.append(f"{pod_ip}\t{' '.join(names)}")
    for alias in host_aliases:
        if alias.get("ip") and alias.get("hostnames"):
            lines.append(f"{alias['ip']}\t{' '.join(alias['hostnames'])}")
    for svc in sorted(services, key=lambda s: (s.namespace, s.name)):
        base = f"{svc.name}.{svc.namespace}"
        names = [f"{base}.svc.{CLUSTER_DOMAIN}", f"{base}.svc", base]
        if svc.namespace == namespace:
            names.append(svc.name)
        for ip, pod_hostname in svc.addresses:
            lines.append(f"{ip}\t{' '.join(names)}")
            if pod_hostname:
                lines.append(f"{ip}\t{pod_hostname}.{base}.svc.{CLUSTER_DOMAIN}")
    return "\n".join(lines) + "\n"


def write_in_place(path: Path, text: str) -> bool:
    """Overwrite ``path`` keeping its inode (it is a bind-mount source); False if the content was already ``text``."""
    data = text.encode()
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.ftruncate(fd, 0)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    finally:
        os.close(fd)
    return True


class ServiceDirectory:
    """All Services' endpoints, fed by the Endpoints watch; thread-safe."""

    def __init__(self) -> None:
        self._services: dict[tuple[str, str], ServiceEndpoints] = {}
        self._lock = threading.Lock()
        self.version = 0

    def update(self, kind: str, obj: dict[str, Any]) -> bool:
        """Apply one watch event; True if what pods should resolve changed."""
        svc = endpoints_from_object(obj)
        key = (svc.namespace, svc.name)
        with self._lock:
            if kind == "DELETED" or not svc.addresses:
                changed = self._services.pop(key, None) is not None
            else:
                changed = self._services.get(key) != svc
                self._services[key] = svc
            if changed:
                self.version += 1
            return changed

    def snapshot(self) -> list[ServiceEndpoints]:
        """Every Service with at least one address."""
        with self._lock:
            return list(self._services.values())
