"""pytest-kuberay: conformance tests for KubeRay RayService incremental upgrades, against the real operator."""

from pytest_kuberay.errors import KubeRayTestError, ServeConfigError, SettingsError
from pytest_kuberay.known_bugs import KNOWN_BUGS, KnownBug
from pytest_kuberay.observe.serve_probe import ServeProbe, ServeSnapshot
from pytest_kuberay.observe.timeline import InvariantViolationError, Sample, Step, Timeline, TimelineRecorder
from pytest_kuberay.settings import Settings
from pytest_kuberay.verdict.invariants import Violation
from pytest_kuberay.verdict.polling import eventually
from pytest_kuberay.versions import KubeRayVersion

__all__ = [
    "KNOWN_BUGS",
    "InvariantViolationError",
    "KnownBug",
    "KubeRayTestError",
    "KubeRayVersion",
    "Sample",
    "ServeConfigError",
    "ServeProbe",
    "ServeSnapshot",
    "Settings",
    "SettingsError",
    "Step",
    "Timeline",
    "TimelineRecorder",
    "Violation",
    "eventually",
]
