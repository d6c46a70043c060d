"""The end-of-session answer: a version x test table, the known-bug verdicts, and each violation's evidence.

"Is this KubeRay version safe for incremental upgrades?" should be readable at
a glance: one row per test (without its version), one column per version, and
below it, for every invariant violation, the step, the cluster and the config
diff.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_kuberay.known_bugs import KnownBug
from pytest_kuberay.observe.timeline import InvariantViolationError
from pytest_kuberay.versions import KubeRayVersion

__all__ = ["BUG_STATES", "SessionSummary"]

BUG_STATES = {
    (True, "violation"): "reproduced, as registered",
    (True, "passed"): "NOT reproduced (strict xfail: this fails the run)",
    (True, "error"): "NOT reproduced: the test failed before its invariants could show the bug",
    (False, "passed"): "not present, as registered",
    (False, "violation"): "FOUND on a version the registry calls unaffected",
    (False, "error"): "not checked: the test failed before its invariants ran",
    (True, "regression"): "NOT reproduced: other invariants broke (an unknown regression, not this bug)",
    (False, "regression"): "FOUND? no: other invariants broke (an unknown regression, not this bug)",
}


@dataclass
class TestResult:
    test: str  # node id without the version
    version: str
    outcome: str = "?"
    bug: KnownBug | None = None
    expected_to_fail: bool = False
    bug_outcome: str | None = None  # passed | violation | error, for kuberay_bug tests
    violation: Any = None  # the first Violation, when an invariant failed
    artifacts: tuple[str, ...] = ()
    ray_versions: str = ""  # what the Ray clusters reported, e.g. "2.46.0"
    marked: tuple[str, ...] = ()  # every bug id the test is marked with
    error_line: str = ""  # the first line of a failure that is not an invariant violation

    @property
    def bug_state(self) -> str:
        """What the run says about the deciding bug (see :data:`BUG_STATES`); empty for an unmarked test."""
        if self.bug is None or self.bug_outcome is None:
            return ""
        return BUG_STATES[(self.expected_to_fail, self.bug_outcome)]

    @property
    def evidence(self) -> str:
        """One line a reader can check: the first violation, else the failure's first line."""
        if self.violation is not None:
            return str(self.violation).splitlines()[0].strip()
        return self.error_line

    def as_dict(self) -> dict[str, Any]:
        return {"test": self.test, "version": self.version, "outcome": self.outcome,
                "bug": self.bug.id if self.bug else None, "marked": list(self.marked),
                "expected_to_fail": self.expected_to_fail, "bug_outcome": self.bug_outcome,
                "bug_state": self.bug_state, "evidence": self.evidence, "artifacts": list(self.artifacts),
                "ray_versions": self.ray_versions}


def _row_name(item: pytest.Item, version: KubeRayVersion) -> str:
    """The node id without the version's part of the parameter id: one table row across versions."""
    callspec = getattr(item, "callspec", None)
    base = item.nodeid.split("[", 1)[0]
    rest = "-".join(p for p in (callspec.id if callspec else "").replace(version.label, "").split("-") if p)
    return f"{base}[{rest}]" if rest else base


def _headline(violation: Any) -> str:
    where = f" on cluster {violation.cluster!r}" if violation.cluster else ""
    change = f" ({violation.changes[0]})" if violation.changes else ""
    return f"{violation.invariant}{where} at {violation.step}{change}"


@dataclass
class SessionSummary:
    """Collects one result per (test, version) from the reports, and writes the summary at the end."""

    version_arg: str
    results: dict[tuple[str, str], TestResult] = field(default_factory=dict)

    def record(self, item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport,
               bug_verdict: Any) -> None:
        callspec = getattr(item, "callspec", None)
        version = callspec.params.get(self.version_arg) if callspec else None
        if not isinstance(version, KubeRayVersion):
            return
        key = (_row_name(item, version), version.label)
        result = self.results.setdefault(key, TestResult(*key))
        if report.when == "setup" and not report.passed:
            result.outcome = "skipped" if report.skipped else "error"
        elif report.when == "call":
            result.outcome = self._outcome(report)
            if call.excinfo is not None and call.excinfo.errisinstance(InvariantViolationError):
                violations = getattr(call.excinfo.value, "violations", [])
                result.violation = violations[0] if violations else None
        elif report.when == "teardown" and report.failed and result.outcome == "passed":
            result.outcome = "error"
        if report.failed and not result.error_line:
            result.error_line = next((ln.strip() for ln in report.longreprtext.splitlines() if ln.strip()), "")[:300]
        if bug_verdict is not None and report.when == "call" and result.outcome != "skipped":
            result.bug = bug_verdict.bug
            result.expected_to_fail = bug_verdict.expected_to_fail
            result.marked = bug_verdict.marked
            if call.excinfo is None:
                result.bug_outcome = "passed"
            elif call.excinfo.errisinstance(InvariantViolationError):
                error: InvariantViolationError = call.excinfo.value  # type: ignore[assignment]
                markers = error.timeline.markers if error.timeline is not None else {}
                ours = any(bug_verdict.bug.matches(v, markers) for v in error.violations) or not error.violations
                result.bug_outcome = "violation" if ours else "regression"
            else:
                result.bug_outcome = "error"
        result.artifacts = tuple(str(v) for k, v in item.user_properties if k in ("kuberay_plot", "kuberay_artifacts"))
        result.ray_versions = next((str(v) for k, v in item.user_properties if k == "kuberay_ray_versions"),
                                   result.ray_versions)

    @staticmethod
    def _outcome(report: pytest.TestReport) -> str:
        if hasattr(report, "wasxfail"):
            return "xfail" if report.skipped else "XPASS"
        if report.skipped:
            return "skipped"
        if report.failed and "[XPASS(strict)]" in str(report.longrepr):
            return "XPASS(strict)"
        return "passed" if report.passed else "FAILED"

    def _cell(self, result: TestResult | None) -> str:
        if result is None:
            return "-"
        if result.outcome == "xfail" and result.bug is not None:
            return f"xfail #{result.bug.id}"
        return result.outcome

    def write_json(self, path: Path) -> Path | None:
        """Every result as JSON (``conformance.json``): what ``pytest-kuberay conformance`` builds its table from."""
        if not self.results:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([r.as_dict() for r in self.results.values()], indent=1) + "\n")
        return path

    def write(self, section: Callable[[str], None], line: Callable[[str], None]) -> None:
        if not self.results:
            return
        versions = list(dict.fromkeys(v for _, v in self.results))
        tests = list(dict.fromkeys(t for t, _ in self.results))
        section("KubeRay conformance")
        width = max(len(t) for t in tests)
        line(f"{'test':<{width}}  " + "  ".join(f"{v:<16}" for v in versions))
        for test in tests:
            cells = [self._cell(self.results.get((test, v))) for v in versions]
            line(f"{test:<{width}}  " + "  ".join(f"{c:<16}" for c in cells))
        rays = [", ".join(sorted({r.ray_versions for (_, rv), r in self.results.items() if rv == v and r.ray_versions}))
                for v in versions]
        if any(rays):
            line(f"{'Ray in the clusters (their dashboards report)':<{width}}  "
                 + "  ".join(f"{r or '-':<16}" for r in rays))
        for result in self.results.values():
            headline = f": {_headline(result.violation)}" if result.violation is not None else ""
            if result.bug is not None and result.bug_outcome is not None:
                state = BUG_STATES[(result.expected_to_fail, result.bug_outcome)]
                line(f"bug {result.bug.id} on {result.version}: {state}{headline} -- {result.test}")
            elif result.violation is not None:
                line(f"{result.test} on {result.version}: invariant violated{headline}")
            else:
                continue
            if result.violation is not None:
                for text in str(result.violation).splitlines():
                    line(f"    {text.strip()}")
            for path in result.artifacts:
                line(f"    artifacts: {path}")
