"""A pod's network: its own network namespace, a veth on the cluster bridge, an IP from the pod CIDR.

Pods need real, routable addresses: the API server refuses to proxy to loopback, and Ray
nodes find each other by IP. The host side of each veth joins the bridge, whose address
(the gateway) is the pod's default route, so the host, the API server and every other pod
reach it. Names are derived from the bridge and the IP's last octet (``<bridge>-p<n>`` for
the namespace, ``<bridge>v<n>`` for the host veth), so they are unique per bridge and fit
in the 15 characters an interface name allows.
"""

from __future__ import annotations

import ipaddress
import logging
import subprocess
import threading
from dataclasses import dataclass

__all__ = ["IpAllocator", "NetworkError", "PodNetwork", "delete_pod_network", "netns_exists"]

log = logging.getLogger(__name__)

#: Pod IPs start here: .1 is the gateway, the rest of the low range stays free for other uses.
FIRST_HOST = 10


class NetworkError(Exception):
    """A pod network could not be set up."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)
    if check and proc.returncode != 0:
        raise NetworkError(f"`ip {' '.join(args)}` failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


class IpAllocator:
    """Hands out pod IPs from ``cidr`` (.10 upward), round-robin so a freed IP is not reused at once."""

    def __init__(self, cidr: str, gateway_ip: str, *, first_host: int = FIRST_HOST) -> None:
        self.network = ipaddress.IPv4Network(cidr)
        gateway = ipaddress.IPv4Address(gateway_ip)
        base = int(self.network.network_address)
        self._pool = [ip for ip in self.network.hosts() if ip != gateway and int(ip) - base >= first_host]
        self._used: set[ipaddress.IPv4Address] = set()
        self._next = 0
        self._lock = threading.Lock()

    def allocate(self) -> str:
        """A free IP; raises NetworkError when the CIDR is full."""
        with self._lock:
            for step in range(len(self._pool)):
                ip = self._pool[(self._next + step) % len(self._pool)]
                if ip not in self._used:
                    self._used.add(ip)
                    self._next = (self._next + step + 1) % len(self._pool)
                    return str(ip)
        raise NetworkError(f"no free pod IP left in {self.network}")

    def reserve(self, ip: str) -> None:
        """Mark ``ip`` as taken (pods found running after a restart)."""
        with self._lock:
            self._used.add(ipaddress.IPv4Address(ip))

    def release(self, ip: str) -> None:
        """Give ``ip`` back."""
        with self._lock:
            self._used.discard(ipaddress.IPv4Address(ip))


def netns_exists(name: str) -> bool:
    """True if ``ip netns`` knows ``name``."""
    return _ip("netns", "pids", name, check=False).returncode == 0


def delete_pod_network(netns: str, host_veth: str) -> None:
    """Delete the host veth, then the netns (``ip netns del`` is asynchronous; the veth name may be reused at once)."""
    proc = _ip("link", "del", "dev", host_veth, check=False)
    if proc.returncode != 0 and "Cannot find device" not in proc.stderr and "does not exist" not in proc.stderr:
        log.warning("deleting veth %s: %s", host_veth, proc.stderr.strip())
    proc = _ip("netns", "del", netns, check=False)
    if proc.returncode != 0 and "No such file" not in proc.stderr:
        log.warning("deleting netns %s: %s", netns, proc.stderr.strip())


@dataclass(frozen=True)
class PodNetwork:
    """One pod's network namespace and veth, with its IP in the bridge's CIDR."""

    bridge: str
    ip: str
    prefix_len: int
    gateway_ip: str

    @property
    def octet(self) -> int:
        """The last octet of the pod IP (names are derived from it)."""
        return int(self.ip.rsplit(".", 1)[1])

    @property
    def netns(self) -> str:
        """The ``ip netns`` name."""
        return f"{self.bridge}-p{self.octet}"

    @property
    def netns_path(self) -> str:
        """Where ``ip netns`` keeps the namespace handle."""
        return f"/run/netns/{self.netns}"

    @property
    def host_veth(self) -> str:
        """The veth end on the bridge."""
        return f"{self.bridge}v{self.octet}"

    def create(self) -> None:
        """Create namespace and veth; on failure remove whatever was made."""
        delete_pod_network(self.netns, self.host_veth)  # a leftover of a crashed run with the same name
        peer = f"{self.bridge}c{self.octet}"
        try:
            _ip("netns", "add", self.netns)
            _ip("link", "add", self.host_veth, "type", "veth", "peer", "name", peer, "netns", self.netns)
            _ip("link", "set", self.host_veth, "master", self.bridge, "up")
            _ip("-n", self.netns, "link", "set", peer, "name", "eth0")
            _ip("-n", self.netns, "addr", "add", f"{self.ip}/{self.prefix_len}", "dev", "eth0")
            _ip("-n", self.netns, "link", "set", "eth0", "up")
            _ip("-n", self.netns, "link", "set", "lo", "up")
            _ip("-n", self.netns, "route", "add", "default", "via", self.gateway_ip)
        except BaseException:
            delete_pod_network(self.netns, self.host_veth)
            raise
        log.debug("pod network %s: %s via %s on %s", self.netns, self.ip, self.gateway_ip, self.bridge)

    def delete(self) -> None:
        """Remove veth and namespace."""
        delete_pod_network(self.netns, self.host_veth)
