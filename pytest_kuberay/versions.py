"""KubeRay versions: what a user may ask for, and what follows from it.

A version is a release tag (``v1.5.0``) optionally followed by ``+<patch>``,
where each patch names an upstream fix applied on top of that release when the
operator is built from source (``v1.5.0+pr4212``). The patch label is part of
the version's identity, so reports never confuse a patched build with the
release it was built from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.version import Version

from pytest_kuberay._support.toolchain import KNOWN_PATCHES as BUILD_PATCHES
from pytest_kuberay.errors import SettingsError

__all__ = [
    "DEFAULT_KUBERAY_VERSION",
    "KNOWN_PATCHES",
    "KNOWN_RELEASES",
    "KubeRayVersion",
    "parse_version",
    "parse_version_list",
]

# Releases with the NewClusterWithIncrementalUpgrade strategy (it appeared in v1.5.0).
KNOWN_RELEASES: tuple[str, ...] = ("1.5.0", "1.5.1", "1.5.2", "1.6.0", "1.6.1", "1.6.2", "1.7.0")

# Upstream fixes we can apply to a release when building it from source: label -> what it fixes.
# One registry: the build steps themselves (the toolchain) say which exist.
KNOWN_PATCHES: dict[str, str] = {f"pr{pr}": f"ray-project/kuberay#{pr}: {patch.summary}"
                                 for pr, patch in BUILD_PATCHES.items()}

DEFAULT_KUBERAY_VERSION = "v1.5.1"

# Ray image tag upstream's e2e pairs with each minor line.
_DEFAULT_RAY_TAG = {(1, 5): "2.46.0", (1, 6): "2.52.0", (1, 7): "2.55.0"}

_VERSION_RE = re.compile(r"^v?(?P<release>\d+\.\d+\.\d+)(?:\+(?P<patches>[a-z0-9]+(?:\.[a-z0-9]+)*))?$")


@dataclass(frozen=True, order=True)
class KubeRayVersion:
    """One operator version under test: a release plus the upstream patches applied to it."""

    release: Version
    patches: tuple[str, ...] = ()

    @property
    def tag(self) -> str:
        """The release tag, ``v1.5.0``: what Helm charts, images and Go modules are named by."""
        return f"v{self.release}"

    @property
    def label(self) -> str:
        """The full identity, ``v1.5.0+pr4212``: what reports and caches are keyed by."""
        return self.tag + ("+" + ".".join(self.patches) if self.patches else "")

    @property
    def helm_chart_version(self) -> str:
        return str(self.release)

    @property
    def operator_image(self) -> str:
        return f"quay.io/kuberay/operator:{self.tag}"

    @property
    def default_ray_image(self) -> str:
        tag = _DEFAULT_RAY_TAG.get((self.release.major, self.release.minor), "2.55.0")
        return f"rayproject/ray:{tag}"

    @property
    def incremental_upgrade_gate_default_on(self) -> bool:
        """From v1.7.0 the RayServiceIncrementalUpgrade feature gate is on by default."""
        return self.release >= Version("1.7.0")

    @property
    def supports_rollback(self) -> bool:
        """Rollback of an in-flight incremental upgrade (RollbackInProgress) exists from v1.6.0."""
        return self.release >= Version("1.6.0")

    def __str__(self) -> str:
        return self.label


def _usage(value: str, why: str) -> SettingsError:
    releases = ", ".join(f"v{r}" for r in KNOWN_RELEASES)
    patches = ", ".join(KNOWN_PATCHES)
    return SettingsError(
        f"--kuberay-version: {why} (got {value!r}). Known releases: {releases}; "
        f"patches that can be applied when building from source: {patches}. "
        "Examples: --kuberay-version=v1.5.0, --kuberay-version=v1.5.0,v1.5.1, "
        "--kuberay-version=v1.5.0+pr4212"
    )


def parse_version(value: str) -> KubeRayVersion:
    """Parse one version, rejecting releases and patches we do not know with a usage message."""
    text = value.strip()
    match = _VERSION_RE.match(text)
    if not match:
        raise _usage(value, "not a KubeRay version")
    release = match.group("release")
    if release not in KNOWN_RELEASES:
        raise _usage(value, f"unknown KubeRay release v{release}")
    patches = tuple(match.group("patches").split(".")) if match.group("patches") else ()
    for patch in patches:
        if patch not in KNOWN_PATCHES:
            raise _usage(value, f"unknown patch {patch!r}")
    return KubeRayVersion(Version(release), patches)


def parse_version_list(value: str) -> tuple[KubeRayVersion, ...]:
    """Parse a comma list, keeping the user's order and dropping duplicates."""
    items = [part for part in value.split(",") if part.strip()]
    if not items:
        raise _usage(value, "empty version list")
    seen: dict[str, KubeRayVersion] = {}
    for item in items:
        version = parse_version(item)
        seen.setdefault(version.label, version)
    return tuple(seen.values())
