"""The object invariants on hand-built recordings: each holds on a good upgrade and catches its bug's shape."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pytest_kuberay.observe.apiserver_metrics import parse_write_requests
from pytest_kuberay.observe.objects import ObjectSnapshot, RouteBackend, parse_route_backends
from pytest_kuberay.observe.timeline import Sample, Timeline
from pytest_kuberay.verdict.objects import (
    ROLLBACK_TRIGGER,
    capacity_covers_traffic,
    no_extra_clusters,
    no_operator_panics,
    no_write_churn,
    pending_config_frozen_during_rollback,
    route_matches_status,
    serve_service_keeps_endpoints,
)
from tests.unit.timeline_builders import ACTIVE, PENDING, promoted, sample, snap, status, timeline

THIRD = "rs-c"


def route(**weights: int) -> tuple[RouteBackend, ...]:
    return tuple(RouteBackend(f"{cluster.replace('_', '-')}-serve-svc", w) for cluster, w in weights.items())


def objects(weights: dict[str, int], clusters: tuple[str, ...] = (ACTIVE, PENDING), endpoints: int | None = 1,
            events: dict[str, int] | None = None) -> ObjectSnapshot:
    backends = tuple(RouteBackend(f"{c}-serve-svc", w) for c, w in weights.items())
    return ObjectSnapshot(backends, clusters, endpoints, events or {})


def with_objects(s: Sample, obj: ObjectSnapshot) -> Sample:
    return dataclasses.replace(s, objects=obj)


def good_upgrade() -> Timeline:
    """maxSurge 20: the route follows the status at every step, two clusters, endpoints throughout."""
    samples = []
    t = 0.0
    for active_tc, pending_tc, traffic in [(100, 20, 0), (100, 20, 20), (80, 20, 20), (80, 40, 40), (60, 40, 40)]:
        for _ in range(2):
            samples.append(with_objects(sample(t, status(active_tc, pending_tc, traffic), snap(ACTIVE, "v1"),
                                               snap(PENDING, "v2")),
                                        objects({ACTIVE: 100 - traffic, PENDING: traffic})))
            t += 0.5
    samples.append(with_objects(sample(t, promoted(), snap(PENDING, "v2")), objects({PENDING: 100}, (PENDING,))))
    return timeline(*samples, reconcile_seconds=0.0)


def all_violations(tl: Timeline, invariant) -> list:
    return [v for step in tl.steps for v in invariant(step)]


@pytest.mark.parametrize("invariant", [capacity_covers_traffic, route_matches_status, no_extra_clusters,
                                       pending_config_frozen_during_rollback, serve_service_keeps_endpoints],
                         ids=lambda f: f.__name__)
def test_a_good_upgrade_violates_nothing(invariant) -> None:
    assert all_violations(good_upgrade(), invariant) == []


def test_the_route_is_read_from_every_rule_in_order() -> None:
    raw = {"spec": {"rules": [{"backendRefs": [{"name": "rs-a-serve-svc", "weight": 80},
                                               {"name": "rs-b-serve-svc", "weight": 20}]}]}}
    backends = parse_route_backends(raw)
    assert [b.cluster for b in backends] == [ACTIVE, PENDING]
    assert ObjectSnapshot(backends).route_weights() == {ACTIVE: 80, PENDING: 20}


def test_b1_an_abandoned_pending_leaves_the_active_under_provisioned() -> None:
    """v1.5: after a spec change mid-upgrade the new pending has no traffic while the active is at TC 60."""
    tl = timeline(
        sample(0.0, status(60, 40, 40), snap(ACTIVE, "v1"), snap(PENDING, "v2")),
        sample(0.5, status(60, 0, None, pending=THIRD), snap(ACTIVE, "v1")),
        reconcile_seconds=0.0,
    )
    [violation] = all_violations(tl, capacity_covers_traffic)
    assert violation.invariant == "capacity_covers_traffic"
    assert "the active cluster gets 100% of the traffic with target capacity 60%" in violation.message


def test_b1_route_weights_that_do_not_add_up_outlasting_a_reconcile() -> None:
    samples = [with_objects(sample(t, status(60, 0, 0, pending=THIRD), snap(ACTIVE, "v1")),
                            objects({ACTIVE: 60, THIRD: 0}, (ACTIVE, PENDING, THIRD)))
               for t in (0.0, 0.5, 1.0, 1.5)]
    tl = timeline(*samples, reconcile_seconds=0.5)
    [violation] = all_violations(tl, route_matches_status)
    assert "HTTPRoute weights sum to 60, not 100" in violation.message
    # a disagreement shorter than a reconcile is the operator writing route and status in turn
    assert all_violations(timeline(*samples[:2], reconcile_seconds=0.5), route_matches_status) == []


def test_route_weights_that_differ_from_the_status() -> None:
    samples = [with_objects(sample(t, status(80, 40, 40), snap(ACTIVE, "v1"), snap(PENDING, "v2")),
                            objects({ACTIVE: 80, PENDING: 20})) for t in (0.0, 1.0)]
    [violation] = all_violations(timeline(*samples, reconcile_seconds=0.0), route_matches_status)
    assert f"{PENDING} has weight 20 but status 40%" in violation.message


def test_b1_b2_a_third_raycluster_is_an_extra_cluster() -> None:
    tl = timeline(
        with_objects(sample(0.0, status(80, 40, 20), snap(ACTIVE, "v1"), snap(PENDING, "v2")),
                     objects({ACTIVE: 80, PENDING: 20})),
        with_objects(sample(1.0, status(80, 0, 0, pending=THIRD), snap(ACTIVE, "v1")),
                     objects({ACTIVE: 80, THIRD: 0}, (ACTIVE, PENDING, THIRD))),
        reconcile_seconds=0.0,
    )
    [violation] = all_violations(tl, no_extra_clusters)
    assert violation.cluster == THIRD and "appeared at t=1.0s" in violation.message


def test_a_pending_cluster_no_sampled_status_named_is_the_upgrades_own_but_a_second_one_is_extra() -> None:
    # v1.7.0, a revert right after the upgrade: the pending RayCluster lives for a second, the status
    # samples never show it as pending
    def at(t: float, clusters: tuple[str, ...]) -> Sample:
        return with_objects(sample(t, status(), snap(ACTIVE, "v1")), objects({ACTIVE: 100}, clusters))

    quick = timeline(at(0.0, (ACTIVE,)), at(1.0, (ACTIVE, PENDING)), at(2.0, (ACTIVE,)), reconcile_seconds=0.0)
    assert all_violations(quick, no_extra_clusters) == []
    twice = timeline(at(0.0, (ACTIVE,)), at(1.0, (ACTIVE, PENDING)), at(2.0, (ACTIVE, THIRD)), reconcile_seconds=0.0)
    [violation] = all_violations(twice, no_extra_clusters)
    assert violation.cluster == THIRD


def _rollback(pending_after_revert: str) -> Timeline:
    tl = timeline(
        sample(0.0, status(80, 40, 20), snap(ACTIVE, "v1"), snap(PENDING, "v2")),
        sample(1.0, status(80, 40, 20), snap(ACTIVE, "v1"), snap(PENDING, "v2")),
        sample(2.0, status(100, 40, 20), snap(ACTIVE, "v1"), snap(PENDING, pending_after_revert)),
        sample(3.0, status(100, 0, 0), snap(ACTIVE, "v1"), snap(PENDING, pending_after_revert)),
        reconcile_seconds=0.0,
    )
    tl.markers = {ROLLBACK_TRIGGER: 1.5}
    return tl


def test_b3_the_pending_cluster_gets_the_reverted_config_during_rollback() -> None:
    [violation] = all_violations(_rollback("v1"), pending_config_frozen_during_rollback)
    assert (violation.role, violation.became) == ("pending", "old")
    assert "while it still had 20% of the traffic" in violation.message
    assert all_violations(_rollback("v2"), pending_config_frozen_during_rollback) == []


def test_b15_the_serve_service_without_endpoints_after_promotion() -> None:
    samples = [sample(-1.0, status(), snap(ACTIVE, "v1"))]  # the upgrade began on ACTIVE
    samples += [with_objects(sample(t, promoted(), snap(PENDING, "v2")), objects({PENDING: 100}, (PENDING,), 0))
                for t in (0.0, 1.0, 2.0)]
    [violation] = all_violations(timeline(*samples, reconcile_seconds=0.5), serve_service_keeps_endpoints)
    assert "the RayService's serve Service has 0 ready endpoints after promotion" in violation.message


def _promoted_with(serve: int | None, head: int | None) -> Timeline:
    samples = [sample(-1.0, status(), snap(ACTIVE, "v1"))]
    samples += [with_objects(sample(t, promoted(), snap(PENDING, "v2")),
                             dataclasses.replace(objects({PENDING: 100}, (PENDING,), serve), head_endpoints=head))
                for t in (0.0, 1.0, 2.0)]
    return timeline(*samples, reconcile_seconds=0.5)


def test_b15_with_the_incremental_strategy_only_the_head_service_exists_and_is_judged() -> None:
    # recorded on v1.6.2: no <rs>-serve-svc at all (None), the <rs>-head-svc with one ready endpoint
    assert all_violations(_promoted_with(None, 1), serve_service_keeps_endpoints) == []
    [violation] = all_violations(_promoted_with(None, 0), serve_service_keeps_endpoints)
    assert "the RayService's head Service has 0 ready endpoints" in violation.message
    [both] = all_violations(_promoted_with(0, 0), serve_service_keeps_endpoints)
    assert "serve and head Services have 0 ready endpoints" in both.message


def test_a_rayservice_without_its_own_services_is_not_judged_as_empty() -> None:
    assert all_violations(_promoted_with(None, None), serve_service_keeps_endpoints) == []


def test_b6_b7_write_churn_at_steady_state() -> None:
    churning = timeline(sample(0.0, status(), snap(ACTIVE, "v1")), sample(20.0, status(), snap(ACTIVE, "v1")))
    churning.writes = {"gateways": (40, 50), "httproutes": (7, 8)}
    [violation] = no_write_churn(churning)
    assert violation.role == "gateways" and "10 writes on gateways in 20s" in violation.message
    churning.writes = {"gateways": (40, 41), "httproutes": (7, 7)}
    assert no_write_churn(churning) == []


def test_write_churn_without_counts_is_an_error_not_a_pass() -> None:
    with pytest.raises(ValueError, match="no API server write counts for gateways, httproutes"):
        no_write_churn(timeline(sample(0.0, status(), snap(ACTIVE, "v1"))))


#: Lines of a real API server's /metrics (kube-apiserver v1.34.4, KubeRay v1.5.1 at steady state, 2026-12-02).
RECORDED_METRICS = """\
# HELP apiserver_request_total [STABLE] Counter of apiserver requests broken out for each verb, dry run value, \
group, version, resource, scope, component, and HTTP response code.
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",dry_run="",group="gateway.networking.k8s.io",\
resource="gateways",scope="namespace",subresource="",verb="LIST",version="v1"} 5
apiserver_request_total{code="200",component="apiserver",dry_run="",group="gateway.networking.k8s.io",\
resource="gateways",scope="resource",subresource="",verb="GET",version="v1"} 2
apiserver_request_total{code="200",component="apiserver",dry_run="",group="gateway.networking.k8s.io",\
resource="gateways",scope="resource",subresource="",verb="PUT",version="v1"} 102
apiserver_request_total{code="200",component="apiserver",dry_run="",group="gateway.networking.k8s.io",\
resource="gateways",scope="resource",subresource="status",verb="PUT",version="v1"} 8
apiserver_request_total{code="201",component="apiserver",dry_run="",group="gateway.networking.k8s.io",\
resource="gateways",scope="resource",subresource="",verb="POST",version="v1"} 4
apiserver_request_total{code="409",component="apiserver",dry_run="",group="gateway.networking.k8s.io",\
resource="httproutes",scope="resource",subresource="",verb="PUT",version="v1"} 3
"""


def test_write_requests_are_read_from_the_api_servers_counter() -> None:
    # the operator's PUTs count, not the gateway controller's status writes, reads or the create
    assert parse_write_requests(RECORDED_METRICS, "gateway.networking.k8s.io", "gateways") == 102
    assert parse_write_requests(RECORDED_METRICS, "gateway.networking.k8s.io", "httproutes") == 3


def test_operator_panics_are_read_from_its_logs(tmp_path: Path) -> None:
    log = tmp_path / "operator.log"
    log.write_text('{"level":"info","msg":"Reconciling"}\n'
                   '{"level":"error","msg":"Observed a panic in reconciler: runtime error: invalid memory address"}\n')
    [violation] = no_operator_panics([log], where="deploy")
    assert "1 panic line(s)" in violation.message and "invalid memory address" in violation.message
    assert no_operator_panics([log], since=1) == []  # the panics before what is judged do not count
    log.write_text('{"level":"info","msg":"Reconciling"}\n')
    assert no_operator_panics([log]) == []
