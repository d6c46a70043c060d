"""The network of one local cluster: a node network namespace joined to the host by a veth pair.

The node (kubelet, containerd, kube-proxy, CoreDNS) lives in its own network namespace
``pkr<n>``, the way a kind node lives in its container. The namespace holds the CNI
bridge, the pods' veths and kube-proxy's iptables rules, so nothing of a run touches the
host's iptables, and deleting the namespace removes all of it at once.

Each cluster takes one /24 of 10.244.0.0/16:

* ``10.244.<n>.0/30`` links host and node: the host end of the veth, also called
  ``pkr<n>``, is ``.1`` (the API server listens there, so pods and the host reach it);
  the node end, ``eth0`` in the namespace, is ``.2`` (kubelet's node IP);
* ``10.244.<n>.128/25`` is the pod network on the node's CNI bridge; the host routes it
  via the node, so the host (API server proxy, Traefik, our probe) reaches every pod IP.

The namespace name is the allocation lock: ``ip netns add`` fails if another run took
``n`` first, so concurrent runs never share a subnet. Subnets that overlap any address or
route already on the machine are skipped. The host veth carries the run directory in its
alias, so a reaper can tell our links from anyone else's.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pytest_kuberay.errors import ProviderError

__all__ = [
    "LINK_PREFIX",
    "POD_SUPERNET",
    "NodeNetwork",
    "delete_link",
    "delete_netns",
    "link_exists",
    "netns_exists",
    "our_links",
    "require_ip",
]

log = logging.getLogger(__name__)

LINK_PREFIX = "pkr"
POD_SUPERNET = ipaddress.IPv4Network("10.244.0.0/16")
NETNS_DIR = Path("/run/netns")
#: Written into the host veth's alias, so a reaper can tell our links from anyone else's.
_ALIAS_PREFIX = "pytest-kuberay:"


def require_ip() -> str:
    """Path of the ``ip`` command (iproute2), or a ProviderError that says how to get it."""
    ip = shutil.which("ip")
    if ip is None:
        raise ProviderError(
            "the local provider needs the `ip` command from iproute2 for its node network: "
            "install it (e.g. `apt-get install iproute2`), or use another provider."
        )
    return ip


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([require_ip(), *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise ProviderError(
            f"`ip {' '.join(args)}` failed: {proc.stderr.strip() or proc.stdout.strip()}. "
            "The local provider must run as root (CAP_NET_ADMIN) to manage its node network."
        )
    return proc


def _ip_json(*args: str) -> list[dict[str, object]]:
    out = _ip("-j", *args).stdout.strip()
    data = json.loads(out) if out else []
    return data if isinstance(data, list) else []


def link_exists(name: str) -> bool:
    """True if a network interface called ``name`` exists in the host namespace."""
    return _ip("link", "show", "dev", name, check=False).returncode == 0


def netns_exists(name: str) -> bool:
    """True if the named network namespace exists (``ip netns add`` made ``/run/netns/<name>``)."""
    return (NETNS_DIR / name).exists()


def our_links() -> dict[str, str]:
    """Host veths we created, by name, with the run directory from their alias (empty without iproute2)."""
    if shutil.which("ip") is None:
        return {}
    found = {}
    for link in _ip_json("link", "show"):
        name = str(link.get("ifname", ""))
        alias = str(link.get("ifalias", ""))
        if name.startswith(LINK_PREFIX) and alias.startswith(_ALIAS_PREFIX):
            found[name] = alias[len(_ALIAS_PREFIX) :]
    return found


def delete_link(name: str) -> bool:
    """Delete interface ``name`` if it exists (its veth peer goes with it); True if it was deleted."""
    proc = _ip("link", "del", "dev", name, check=False)
    if proc.returncode == 0:
        log.debug("deleted link %s", name)
        return True
    if link_exists(name):
        raise ProviderError(f"cannot delete link {name}: {proc.stderr.strip()}")
    return False


def delete_netns(name: str) -> bool:
    """Delete a named network namespace if it exists; True if it was deleted.

    The kernel frees the namespace (and every interface, route and iptables rule in it)
    once no process is left in it.
    """
    if not netns_exists(name):
        return False
    proc = _ip("netns", "del", name, check=False)
    if proc.returncode != 0 and netns_exists(name):
        raise ProviderError(f"cannot delete network namespace {name}: {proc.stderr.strip()}")
    log.debug("deleted netns %s", name)
    return True


def _networks_in_use() -> list[ipaddress.IPv4Network]:
    """IPv4 networks of every address and route on the machine (default routes excluded)."""
    used: list[ipaddress.IPv4Network] = []
    for link in _ip_json("-4", "addr", "show"):
        infos = link.get("addr_info", [])
        for info in infos if isinstance(infos, list) else []:
            if isinstance(info, dict) and "local" in info:
                used.append(ipaddress.IPv4Network(f"{info['local']}/{info.get('prefixlen', 32)}", strict=False))
    for table in ("main", "local"):
        for route in _ip_json("-4", "route", "show", "table", table):
            dst = str(route.get("dst", ""))
            if not dst or dst == "default":
                continue
            try:
                used.append(ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False))
            except ValueError:
                continue
    return used


def _candidates(used: Iterable[ipaddress.IPv4Network]) -> list[int]:
    """Indexes n whose 10.244.<n>.0/24 overlaps nothing in ``used`` (pure, for tests)."""
    taken = list(used)
    free = []
    for n, subnet in enumerate(POD_SUPERNET.subnets(new_prefix=24)):
        if not any(subnet.overlaps(net) for net in taken):
            free.append(n)
    return free


@dataclass(frozen=True)
class NodeNetwork:
    """Network namespace ``pkr<n>`` and host veth ``pkr<n>`` for cluster number ``n``."""

    name: str
    index: int

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        """The cluster's whole /24."""
        return ipaddress.IPv4Network(f"{POD_SUPERNET.network_address + (self.index << 8)}/24")

    @property
    def host_ip(self) -> str:
        """The host end of the link: the API server listens here; the node routes everything else here."""
        return str(self.subnet.network_address + 1)

    @property
    def node_ip(self) -> str:
        """The node's address (kubelet's InternalIP, kube-proxy, CoreDNS)."""
        return str(self.subnet.network_address + 2)

    @property
    def pod_cidr(self) -> ipaddress.IPv4Network:
        """Where pod IPs come from: the upper half of the /24, on the node's CNI bridge."""
        return ipaddress.IPv4Network(f"{self.subnet.network_address + 128}/25")

    @property
    def pod_gateway(self) -> str:
        """The CNI bridge's own address inside the node namespace."""
        return str(self.pod_cidr.network_address + 1)

    @property
    def netns(self) -> str:
        return self.name

    @property
    def netns_path(self) -> Path:
        """What ``nsenter --net=`` takes."""
        return NETNS_DIR / self.name

    @classmethod
    def create(cls, owner: Path | None = None) -> NodeNetwork:
        """Allocate a free /24, create the node namespace and the veth link, address and route them.

        ``owner`` (the run directory) goes into the host veth's alias, so the run registry can
        delete links whose run directory is gone.
        """
        used = _networks_in_use()
        for n in _candidates(used):
            name = f"{LINK_PREFIX}{n}"
            if netns_exists(name) or link_exists(name):
                continue
            if _ip("netns", "add", name, check=False).returncode != 0:
                if netns_exists(name):  # lost a race with another run: try the next one
                    continue
                _ip("netns", "add", name)  # raises with the real reason
            network = cls(name, n)
            try:
                network._wire(owner)
            except BaseException:
                network.delete()
                raise
            log.info("node network %s: host %s, node %s, pods %s", name, network.host_ip, network.node_ip,
                     network.pod_cidr)
            return network
        raise ProviderError(
            f"no free /24 left under {POD_SUPERNET} for a local cluster: every 10.244.<n>.0/24 overlaps an "
            f"address or route on this machine, or a namespace {LINK_PREFIX}<n> exists. Remove leftovers "
            "with `pytest-kuberay reap`."
        )

    def _wire(self, owner: Path | None) -> None:
        ns = self.name
        _ip("link", "add", "name", self.name, "type", "veth", "peer", "name", "eth0", "netns", ns)
        if owner is not None:
            _ip("link", "set", "dev", self.name, "alias", f"{_ALIAS_PREFIX}{owner}")
        _ip("addr", "add", f"{self.host_ip}/30", "dev", self.name)
        _ip("link", "set", "dev", self.name, "up")
        _ip("-n", ns, "link", "set", "dev", "lo", "up")
        _ip("-n", ns, "addr", "add", f"{self.node_ip}/30", "dev", "eth0")
        _ip("-n", ns, "link", "set", "dev", "eth0", "up")
        _ip("-n", ns, "route", "add", "default", "via", self.host_ip)
        _ip("route", "add", str(self.pod_cidr), "via", self.node_ip, "dev", self.name)
        # The node forwards between its pods and the host; both settings are per namespace.
        for key in ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables"):
            self._sysctl(key, "1")

    def _sysctl(self, key: str, value: str) -> None:
        """Write a sysctl inside the node namespace (``/proc/sys/net`` shows the caller's namespace)."""
        nsenter = shutil.which("nsenter") or "nsenter"
        proc = subprocess.run([nsenter, f"--net={self.netns_path}", "--", "sh", "-c",
                               f"echo {value} > /proc/sys/{key}"], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ProviderError(f"cannot set {key}={value} in network namespace {self.name}: {proc.stderr.strip()}")

    def delete(self) -> None:
        """Remove the host veth (its peer goes with it) and the node namespace."""
        delete_link(self.name)
        delete_netns(self.name)
