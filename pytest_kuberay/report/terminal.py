"""Live progress for people watching an upgrade: one line per capacity step.

Lines go straight to pytest's terminal writer (not captured), follow its
verbosity, and stay silent under ``-q``.
"""

from __future__ import annotations

from collections.abc import Callable

from pytest_kuberay.observe.timeline import Sample

__all__ = ["StepPrinter", "format_step_line"]


def _fingerprint(sample: Sample, cluster: str | None) -> str:
    if cluster is None:
        return "-"
    snap = sample.snapshots.get(cluster)
    if snap is None:
        return "?"
    if not snap.ok:
        return "err"
    return ",".join((fp or "none")[:6] for fp in snap.fingerprints().values()) or "no-apps"


def format_step_line(label: str, sample: Sample) -> str:
    """``[v1.5.0]  12.3s  active 60%  pending 40%  traffic 40%  config a1b2c3 / d4e5f6  apps echo=RUNNING/RUNNING``."""
    assert sample.key is not None and sample.status is not None
    active, pending, traffic = sample.key
    status = sample.status
    apps = sorted({*(status.active.app_statuses if status.active else {}),
                   *(status.pending.app_statuses if status.pending else {})})
    app_text = " ".join(
        f"{app}={(status.active.app_statuses.get(app, '-') if status.active else '-')}"
        f"/{(status.pending.app_statuses.get(app, '-') if status.pending else '-')}"
        for app in apps
    )
    return (f"[{label}] {sample.t:6.1f}s  active {active:>3}%  pending {pending:>3}%  traffic {traffic:>3}%  "
            f"config {_fingerprint(sample, sample.active_cluster)} / {_fingerprint(sample, sample.pending_cluster)}"
            f"  apps {app_text or '-'}")


class StepPrinter:
    """A recorder listener that writes a line whenever the step (capacities, traffic, active cluster) changes."""

    def __init__(self, write: Callable[[str], None], label: str) -> None:
        self.write = write
        self.label = label
        self._last: tuple[object, ...] | None = None

    def __call__(self, sample: Sample) -> None:
        if sample.key is None:
            return
        current = (sample.key, sample.active_cluster, sample.pending_cluster)
        if current == self._last:
            return
        self._last = current
        self.write(format_step_line(self.label, sample))
