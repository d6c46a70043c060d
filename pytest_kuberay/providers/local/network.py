"""A Linux bridge per local cluster: the API server's address and, later, the pods' network.

The API server refuses to proxy to loopback, and pods need routable IPs, so each local
cluster gets its own bridge ``pkr<n>`` with gateway 10.244.<n>.1/24. The bridge name is
the allocation lock: ``ip link add`` fails if another run took ``n`` first, so concurrent
runs (pytest-xdist workers, other sessions) never share a subnet. Subnets that overlap
any address or route already on the machine are skipped.
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
    "BRIDGE_PREFIX",
    "POD_SUPERNET",
    "BridgeNetwork",
    "bridge_exists",
    "bridge_owner",
    "delete_bridge",
    "our_bridges",
    "require_ip",
]

log = logging.getLogger(__name__)

BRIDGE_PREFIX = "pkr"
POD_SUPERNET = ipaddress.IPv4Network("10.244.0.0/16")
#: Written into the bridge's alias, so a reaper can tell our bridges from anyone else's.
_ALIAS_PREFIX = "pytest-kuberay:"


def require_ip() -> str:
    """Path of the ``ip`` command (iproute2), or a ProviderError that says how to get it."""
    ip = shutil.which("ip")
    if ip is None:
        raise ProviderError(
            "the local provider needs the `ip` command from iproute2 to create its network bridge: "
            "install it (e.g. `apt-get install iproute2`), or use another provider."
        )
    return ip


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([require_ip(), *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise ProviderError(
            f"`ip {' '.join(args)}` failed: {proc.stderr.strip() or proc.stdout.strip()}. "
            "The local provider must run as root (or with CAP_NET_ADMIN) to manage its bridge."
        )
    return proc


def _ip_json(*args: str) -> list[dict[str, object]]:
    out = _ip("-j", *args).stdout.strip()
    data = json.loads(out) if out else []
    return data if isinstance(data, list) else []


def bridge_exists(name: str) -> bool:
    """True if a network interface called ``name`` exists."""
    return _ip("link", "show", "dev", name, check=False).returncode == 0


def bridge_owner(name: str) -> str | None:
    """The run directory written into a bridge's alias by us, or None if it is not ours (or gone)."""
    links = _ip_json("link", "show", "dev", name) if bridge_exists(name) else []
    alias = str(links[0].get("ifalias", "")) if links else ""
    return alias[len(_ALIAS_PREFIX) :] if alias.startswith(_ALIAS_PREFIX) else None


def our_bridges() -> dict[str, str]:
    """Bridges we created, by name, with the run directory from their alias (empty without iproute2)."""
    if shutil.which("ip") is None:
        return {}
    found = {}
    for link in _ip_json("link", "show", "type", "bridge"):
        name = str(link.get("ifname", ""))
        alias = str(link.get("ifalias", ""))
        if name.startswith(BRIDGE_PREFIX) and alias.startswith(_ALIAS_PREFIX):
            found[name] = alias[len(_ALIAS_PREFIX) :]
    return found


def delete_bridge(name: str) -> bool:
    """Delete interface ``name`` if it exists; True if it was deleted."""
    proc = _ip("link", "del", "dev", name, check=False)
    if proc.returncode == 0:
        log.debug("deleted bridge %s", name)
        return True
    if bridge_exists(name):
        raise ProviderError(f"cannot delete bridge {name}: {proc.stderr.strip()}")
    return False


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
class BridgeNetwork:
    """One bridge ``pkr<n>`` with gateway 10.244.<n>.1 in 10.244.<n>.0/24."""

    name: str
    index: int

    @property
    def cidr(self) -> ipaddress.IPv4Network:
        """The bridge's /24, where pod IPs come from."""
        return ipaddress.IPv4Network(f"{POD_SUPERNET.network_address + (self.index << 8)}/24")

    @property
    def gateway_ip(self) -> str:
        """The bridge's own address: the API server listens here, and pods route through it."""
        return str(self.cidr.network_address + 1)

    @classmethod
    def create(cls, owner: Path | None = None) -> BridgeNetwork:
        """Allocate a free /24 under 10.244.0.0/16, create its bridge, give it the gateway IP and bring it up.

        ``owner`` (the run directory) goes into the bridge's alias, so the run registry can
        delete a bridge whose run directory is gone.
        """
        used = _networks_in_use()
        for n in _candidates(used):
            name = f"{BRIDGE_PREFIX}{n}"
            if bridge_exists(name):
                continue
            proc = _ip("link", "add", "name", name, "type", "bridge", check=False)
            if proc.returncode != 0:
                if bridge_exists(name):  # lost a race with another run: try the next one
                    continue
                _ip("link", "add", "name", name, "type", "bridge")  # raises with the real reason
            network = cls(name, n)
            try:
                if owner is not None:
                    _ip("link", "set", "dev", name, "alias", f"{_ALIAS_PREFIX}{owner}")
                _ip("addr", "add", f"{network.gateway_ip}/24", "dev", name)
                _ip("link", "set", "dev", name, "up")
            except BaseException:
                delete_bridge(name)
                raise
            log.info("created bridge %s with %s/24", name, network.gateway_ip)
            return network
        raise ProviderError(
            f"no free /24 left under {POD_SUPERNET} for a local cluster bridge: every 10.244.<n>.0/24 overlaps "
            f"an address or route on this machine, or a bridge {BRIDGE_PREFIX}<n> exists. Remove leftover bridges "
            "with `python -m pytest_kuberay.providers.local.run_registry --reap`."
        )

    def delete(self) -> None:
        """Remove the bridge (and with it its address and route)."""
        delete_bridge(self.name)
