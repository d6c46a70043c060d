"""Samples of an upgrade, grouped into steps, with every Serve-config change on record.

One module a job: :mod:`.samples` (one instant), :mod:`.steps` (samples grouped into steps), :mod:`.recorder`
(taking samples at a fixed rate), :mod:`.export` (JSON), :mod:`.violations` (the failure). This package
re-exports them under the names the other layers import.
"""

from pytest_kuberay.observe.timeline.recorder import ProbeFactory, SampleListener, TimelineRecorder
from pytest_kuberay.observe.timeline.samples import Sample, StepKey
from pytest_kuberay.observe.timeline.steps import OPERATOR_RECONCILE_SECONDS, ConfigChange, Step, Timeline
from pytest_kuberay.observe.timeline.violations import InvariantViolationError

__all__ = [
    "OPERATOR_RECONCILE_SECONDS",
    "ConfigChange",
    "InvariantViolationError",
    "ProbeFactory",
    "Sample",
    "SampleListener",
    "Step",
    "StepKey",
    "Timeline",
    "TimelineRecorder",
]
