"""pytest-kuberay: conformance tests for KubeRay RayService incremental upgrades, against the real operator.

Everything a test (ours under ``pytest_kuberay.suites``, or yours) uses is listed in
``__all__``: the fixtures' types, the upgrade's recording (timeline, samples, steps), the
invariants that judge it, traffic specs, mid-upgrade triggers and the known-bug registry.
Every other module of the package is internal and may change without notice.

Fixtures (registered by the plugin): ``kuberay_settings``, ``kuberay_cluster``,
``kuberay_operator``, ``kuberay_version``, ``kuberay_namespace``, ``kuberay_artifacts``,
``kuberay_progress``, ``rayservice_factory``, ``rayservice``, ``upgrade``.
"""

from pytest_kuberay._support.waiting import eventually
from pytest_kuberay.drive.deploy import DeployedRayService, serving
from pytest_kuberay.drive.traffic import ECHO_TRAFFIC, RequestResult, ResponseParser, TrafficSpec, echo_version_of
from pytest_kuberay.drive.upgrade import TriggerOnce, promoted_for, promoted_or_stalled, traffic_split
from pytest_kuberay.drive.watch import record_for
from pytest_kuberay.errors import KubeRayTestError, ManifestError, ProviderError, ServeConfigError, SettingsError
from pytest_kuberay.known_bugs import KNOWN_BUGS, KnownBug, known_bug
from pytest_kuberay.observe.objects import ObjectSnapshot, RouteBackend
from pytest_kuberay.observe.rayservice_status import RayServiceStatus
from pytest_kuberay.observe.serve_probe import ServeProbe, ServeSnapshot
from pytest_kuberay.observe.timeline import InvariantViolationError, Sample, Step, Timeline, TimelineRecorder
from pytest_kuberay.protocols import (
    KubeRayCluster,
    KubeRayOperator,
    ManifestEdit,
    RayServiceFactory,
    UntilCondition,
    Upgrade,
)
from pytest_kuberay.providers.base import ClusterHandle
from pytest_kuberay.recorded import RecordedUpgrade, UpgradeScenario, recorded_upgrade_fixture, user_scenarios
from pytest_kuberay.settings import Settings
from pytest_kuberay.verdict.invariants import (
    CAPACITY_INVARIANTS,
    Violation,
    active_config_frozen,
    capacity_within_surge,
    live_capacity_matches_status,
    live_capacity_within_surge,
    monotonic_progress,
    pending_runs_new_config,
    traffic_within_capacity,
)
from pytest_kuberay.verdict.lifecycle import (
    active_apps_restored,
    active_cluster_kept,
    promoted_at_full_capacity,
    route_backends_exist,
    upgrade_progresses,
)
from pytest_kuberay.verdict.objects import (
    OBJECT_INVARIANTS,
    ROLLBACK_TRIGGER,
    capacity_covers_traffic,
    no_extra_clusters,
    no_operator_panics,
    no_write_churn,
    operator_panics,
    pending_config_frozen_during_rollback,
    route_matches_status,
    serve_service_keeps_endpoints,
)
from pytest_kuberay.verdict.options import invalid_options_rejected, options_decided
from pytest_kuberay.verdict.sequence import expected_steps, sequence_violations, traffic_interval_violations
from pytest_kuberay.verdict.traffic import (
    TRAFFIC_INVARIANTS,
    requests_recover,
    requests_succeed,
    traffic_follows_weights,
)
from pytest_kuberay.versions import KubeRayVersion

__all__ = [
    "CAPACITY_INVARIANTS",
    "ECHO_TRAFFIC",
    "KNOWN_BUGS",
    "OBJECT_INVARIANTS",
    "ROLLBACK_TRIGGER",
    "TRAFFIC_INVARIANTS",
    "ClusterHandle",
    "DeployedRayService",
    "InvariantViolationError",
    "KnownBug",
    "KubeRayCluster",
    "KubeRayOperator",
    "KubeRayTestError",
    "KubeRayVersion",
    "ManifestEdit",
    "ManifestError",
    "ObjectSnapshot",
    "ProviderError",
    "RayServiceFactory",
    "RayServiceStatus",
    "RecordedUpgrade",
    "RequestResult",
    "ResponseParser",
    "RouteBackend",
    "Sample",
    "ServeConfigError",
    "ServeProbe",
    "ServeSnapshot",
    "Settings",
    "SettingsError",
    "Step",
    "Timeline",
    "TimelineRecorder",
    "TrafficSpec",
    "TriggerOnce",
    "UntilCondition",
    "Upgrade",
    "UpgradeScenario",
    "Violation",
    "active_apps_restored",
    "active_cluster_kept",
    "active_config_frozen",
    "capacity_covers_traffic",
    "capacity_within_surge",
    "echo_version_of",
    "eventually",
    "expected_steps",
    "invalid_options_rejected",
    "known_bug",
    "live_capacity_matches_status",
    "live_capacity_within_surge",
    "monotonic_progress",
    "no_extra_clusters",
    "no_operator_panics",
    "no_write_churn",
    "operator_panics",
    "options_decided",
    "pending_config_frozen_during_rollback",
    "pending_runs_new_config",
    "promoted_at_full_capacity",
    "promoted_for",
    "promoted_or_stalled",
    "record_for",
    "recorded_upgrade_fixture",
    "requests_recover",
    "requests_succeed",
    "route_backends_exist",
    "route_matches_status",
    "sequence_violations",
    "serve_service_keeps_endpoints",
    "serving",
    "traffic_follows_weights",
    "traffic_interval_violations",
    "traffic_split",
    "traffic_within_capacity",
    "upgrade_progresses",
    "user_scenarios",
]
