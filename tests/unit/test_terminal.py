"""Live step lines: one per step change, with capacities, traffic and each cluster's config fingerprint."""

from __future__ import annotations

from pytest_kuberay.observe.serve_probe import config_fingerprint
from pytest_kuberay.report.terminal import StepPrinter, format_step_line
from tests.unit.timeline_builders import ACTIVE, PENDING, app_config, sample, snap, status


def test_line_shows_capacities_traffic_fingerprints() -> None:
    s = sample(12.3, status(60, 40, 40), snap(ACTIVE, "v1"), snap(PENDING, "v2"))
    line = format_step_line("v1.5.0", s)
    v1 = config_fingerprint(app_config("v1"))[:6]
    v2 = config_fingerprint(app_config("v2"))[:6]
    assert line.startswith("[v1.5.0]   12.3s  active  60%  pending  40%  traffic  40%")
    assert f"config {v1} / {v2}" in line


def test_printer_writes_once_per_step() -> None:
    lines: list[str] = []
    printer = StepPrinter(lines.append, "v1.5.1")
    for t, key in [(0.0, (100, 20, 0)), (0.5, (100, 20, 0)), (1.0, (100, 20, 20)), (1.5, (100, 20, 20))]:
        printer(sample(t, status(*key), snap(ACTIVE, "v1"), snap(PENDING, "v2")))
    assert len(lines) == 2
    assert "traffic  20%" in lines[1]
