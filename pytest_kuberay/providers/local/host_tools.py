"""The host commands the local provider runs, and the Debian packages that provide them."""

from __future__ import annotations

import shutil

from pytest_kuberay.errors import ProviderError

__all__ = ["DEBIAN_PACKAGES", "LOCAL_PROVIDER_COMMANDS", "require_commands"]

#: command -> Debian package (the Makefile installs these; versions are pinned in toolchain/debian-packages.txt).
DEBIAN_PACKAGES = {
    "ip": "iproute2",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "mount": "mount",
    "umount": "mount",
    "sleep": "coreutils",
    "chroot": "coreutils",
    "runc": "runc",
    "iptables": "iptables",
    "iptables-restore": "iptables",
    "mmdebstrap": "mmdebstrap",
    "umoci": "umoci",
    "gcc": "gcc",
}

#: Everything a local cluster with a real node needs on the host.
LOCAL_PROVIDER_COMMANDS = tuple(DEBIAN_PACKAGES)


def require_commands(*names: str) -> dict[str, str]:
    """Paths of host commands, or one ProviderError naming every missing one and its Debian package."""
    found = {name: shutil.which(name) for name in names}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        debs = sorted({DEBIAN_PACKAGES.get(name, name) for name in missing})
        raise ProviderError(
            f"the local provider needs {', '.join(missing)} on this machine: install "
            f"`apt-get install {' '.join(debs)}` (or run `make setup`), or use another provider."
        )
    return {name: str(path) for name, path in found.items()}
