"""The types of what the fixtures hand to a test, so an editor completes them and mypy checks their use.

Each provider (local, kind, existing) implements :class:`KubeRayCluster` and returns a
:class:`KubeRayOperator` from ``install_kuberay``; the callable fixtures are
:class:`RayServiceFactory` and :class:`Upgrade`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pytest_kuberay.drive.deploy import DeployedRayService
    from pytest_kuberay.drive.traffic import TrafficSpec
    from pytest_kuberay.drive.upgrade import TriggerOnce
    from pytest_kuberay.observe.rayservice_status import RayServiceStatus
    from pytest_kuberay.observe.timeline import Sample, Timeline
    from pytest_kuberay.providers.base import ClusterHandle
    from pytest_kuberay.versions import KubeRayVersion

__all__ = ["KubeRayCluster", "KubeRayOperator", "ManifestEdit", "RayServiceFactory", "UntilCondition", "Upgrade"]

#: A Kubernetes object as YAML/JSON gives it (a RayService manifest).
Manifest = Mapping[str, object]
#: Edits a copy of the current manifest in place (or returns the new one): the change to roll out.
ManifestEdit = Callable[[dict[str, object]], "Manifest | None"]
#: Listeners that print one line per upgrade step (``kuberay_progress(label)``).
SampleListener = Callable[["Sample"], None]
#: ``until(initial_active_cluster)`` -> a check of the status that is empty once the upgrade is over.
UntilCondition = Callable[[str], Callable[["RayServiceStatus"], str]]


@runtime_checkable
class KubeRayOperator(Protocol):
    """The KubeRay operator of one version, running in (or next to) the cluster."""

    version: KubeRayVersion
    #: False for an operator someone else installed: pytest-kuberay never restarts it.
    restartable: bool

    @property
    def log_paths(self) -> list[Path]:
        """Its logs so far, one file per pod it ran in (panics are read from them)."""

    def ready(self) -> None:
        """Return once it is Ready; raise why not. Installing may return while it still starts."""

    def restart(self, timeout: float = 120.0) -> None:
        """Restart it the way it restarts in production (its pod is deleted); it loses its in-memory state."""

    def stop(self) -> None:
        """Stop following it; uninstall it if pytest-kuberay installed it."""


@runtime_checkable
class KubeRayCluster(Protocol):
    """The session's cluster, whichever provider made it."""

    @property
    def gateway_url(self) -> str:
        """Where the Gateway answers from this machine (per Gateway on kind with Istio: ``gateway_url_for``)."""

    @property
    def handle(self) -> ClusterHandle:
        """Its kubeconfig and API clients (``core``, ``custom``, ``dynamic``)."""

    def install_kuberay(self, version: KubeRayVersion, source: Path | None = None) -> KubeRayOperator:
        """KubeRay at ``version`` (built from ``source`` if given), with the incremental-upgrade gate on."""

    def provide_images(self, images: Sequence[str]) -> None:
        """Make the images pods ask for available (the local provider builds and imports them)."""


class RayServiceFactory(Protocol):
    """``rayservice_factory(manifest, apps=..., ...)``: deploy a RayService and wait until it serves."""

    def __call__(self, manifest: str | Path | Manifest | None = None, *,
                 apps: Mapping[str, str | Path] | None = None, name: str | None = None,
                 max_surge_percent: int | None = None, step_size_percent: int | None = None,
                 interval_seconds: int | None = None,
                 traffic: TrafficSpec | Sequence[TrafficSpec] | None = None,
                 gateway_class: str | None = None) -> DeployedRayService: ...


class Upgrade(Protocol):
    """``upgrade(rayservice, to=..., ...)``: roll a change out and record every step until it is over."""

    def __call__(self, deployed: DeployedRayService,
                 to: str | Path | Manifest | ManifestEdit | None = None, *,
                 cluster_change: str | None = None, serve_change: str | None = None,
                 traffic: bool | TrafficSpec | Sequence[TrafficSpec] = True, interval: float = 0.5,
                 triggers: Sequence[TriggerOnce] = (), until: UntilCondition | None = None,
                 until_description: str = "promotion of a new cluster") -> Timeline: ...
