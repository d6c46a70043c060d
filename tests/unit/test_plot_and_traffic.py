"""The timeline plot is written as a PNG; traffic invariants judge requests per step."""

from __future__ import annotations

from pathlib import Path

from pytest_kuberay.drive.traffic import RequestResult
from pytest_kuberay.report.plot import plot_timeline
from pytest_kuberay.verdict.traffic import requests_recover, requests_succeed, traffic_follows_weights
from tests.unit.timeline_builders import ACTIVE, PENDING, promoted, sample, snap, status, timeline


def _upgrade(requests: list[RequestResult]):
    """Before (t -5), two upgrade steps (t 0..15), promoted (t 20); answers name v1 before and v2 after."""
    tl = timeline(
        sample(-5.0, status(), snap(ACTIVE, "v1")),
        sample(0.0, status(100, 20, 0), snap(ACTIVE, "v1"), snap(PENDING, "v2")),
        sample(5.0, status(100, 20, 0), snap(ACTIVE, "v1"), snap(PENDING, "v2")),
        sample(10.0, status(20, 100, 100), snap(ACTIVE, "v1"), snap(PENDING, "v2")),
        sample(15.0, status(20, 100, 100), snap(ACTIVE, "v1"), snap(PENDING, "v2")),
        sample(20.0, promoted(), snap(PENDING, "v2")),
    )
    tl.requests = [ok(-4, "v1"), *requests, ok(21, "v2")]
    return tl


def ok(t: float, version: str) -> RequestResult:
    return RequestResult(t, True, 200, version, 5.0)


def test_plot_is_a_png_with_a_requests_panel(tmp_path: Path) -> None:
    tl = _upgrade([ok(1, "v1"), ok(12, "v2"), RequestResult(13, False, None, None, 1.0, "ConnectError")])
    path = plot_timeline(tl, tmp_path / "t.png", title="test")
    assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 10_000


def test_plot_takes_answers_that_name_no_version_beside_those_that_do(tmp_path: Path) -> None:
    """A user's route without a parser (README example: /greet) answers with no version: it is plotted, not sorted."""
    unversioned = RequestResult(2, True, 200, None, 5.0, route="/greet")
    path = plot_timeline(_upgrade([ok(1, "v1"), unversioned, ok(12, "v2")]), tmp_path / "t.png", title="mixed")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_requests_succeed_flags_failures_in_their_step() -> None:
    tl = _upgrade([ok(1, "v1"), RequestResult(12, False, 502, None, 1.0, "HTTP 502: bad gateway")])
    assert requests_succeed(tl.steps[1]) == []
    [violation] = requests_succeed(tl.steps[2])
    assert "1 of 1 requests" in violation.message and "HTTP 502" in violation.message


def test_weights_zero_and_hundred_percent_are_enforced_after_programming_time() -> None:
    # (100, 20, 0): only v1 may answer; (20, 100, 100): only v2, once the gateway had 2 s to reprogram
    good = _upgrade([ok(1, "v1"), ok(3, "v1"), ok(10.5, "v1"), ok(13, "v2")])
    assert [traffic_follows_weights(s) for s in good.steps] == [[], [], [], []]
    bad = _upgrade([ok(3, "v2"), ok(13, "v1")])
    assert "pending traffic is 0%" in traffic_follows_weights(bad.steps[1])[0].message
    assert "pending traffic is 100%" in traffic_follows_weights(bad.steps[2])[0].message


def test_weights_cannot_be_judged_without_versions() -> None:
    """Answers that name no version (no parser: any 2xx is a success) leave nothing to tell apart."""
    tl = _upgrade([RequestResult(3, True, 200, None, 5.0), RequestResult(13, True, 200, None, 5.0)])
    tl.requests = [RequestResult(r.t, r.ok, r.status, None, r.latency_ms) for r in tl.requests]
    assert [traffic_follows_weights(s) for s in tl.steps] == [[], [], [], []]


def _requests(failing: tuple[float, float], until: float = 60.0, every: float = 0.2, share: int = 3):
    """Requests every ``every`` s; within ``failing`` (start, end) every ``share``-th one fails (a lost backend)."""
    out = []
    for i in range(int(until / every)):
        t = i * every
        down = failing[0] <= t <= failing[1] and i % share == 0
        out.append(RequestResult(t, not down, 502 if down else 200, None if down else "v1", 3.0,
                                 "502 Bad Gateway" if down else None))
    return out


def _with_requests(requests, marker: float = 10.0):
    tl = timeline(sample(0.0, status(100, 20, 20), snap(ACTIVE, "v1"), snap(PENDING, "v2")))
    tl.requests = requests
    tl.markers["delete-pending"] = marker
    return tl


def test_b18_requests_failing_until_the_lost_pending_is_back_are_caught() -> None:
    tl = _with_requests(_requests((12.0, 50.0)))
    violations = requests_recover(tl, after="delete-pending")
    assert [v.invariant for v in violations] == ["requests_recover"]
    assert "kept failing for 38s" in violations[0].message and "502 Bad Gateway" in violations[0].message


def test_failures_for_about_one_reconcile_are_the_time_to_route_around_a_loss() -> None:
    tl = _with_requests(_requests((12.0, 15.0)))  # grace: reconcile 2 s + programming 2 s + interval 0.5 s
    assert requests_recover(tl, after="delete-pending") == []


def test_requests_recover_judges_only_after_its_marker() -> None:
    tl = _with_requests(_requests((1.0, 9.0)))  # an outage before the disruption is another test's business
    assert requests_recover(tl, after="delete-pending") == []
    assert [v.invariant for v in requests_recover(tl)] == ["requests_recover"]
    assert requests_recover(tl, after="never-happened") == []
