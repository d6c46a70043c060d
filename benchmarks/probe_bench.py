"""Probe round trip and recorder CPU cost against a real local Ray Serve cluster.

Prints figures; asserts nothing. Run: ``make bench`` or
``.venv/bin/python benchmarks/probe_bench.py [--calls 300] [--seconds 20]``.

The recorder's status source here is a fixed RayService status naming one
cluster, so the figure is the cost of sampling and probing, not of the
Kubernetes API.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_kuberay._support.waiting import eventually
from pytest_kuberay.observe.rayservice_status import ClusterStatus, RayServiceStatus
from pytest_kuberay.observe.serve_probe import ServeProbe
from pytest_kuberay.observe.timeline import TimelineRecorder
from pytest_kuberay.workloads.serve_apps import echo_serve_config
from tests.support.local_ray import LocalRayCluster


class FixedStatus:
    def __init__(self, cluster: str) -> None:
        self.status = RayServiceStatus(ClusterStatus(cluster, 100, 100), None)

    def read(self) -> RayServiceStatus:
        return self.status


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def bench_round_trip(probe: ServeProbe, calls: int) -> None:
    for _ in range(10):  # warm the connection
        probe.snapshot()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        snap = probe.snapshot()
        times.append((time.perf_counter() - start) * 1000)
        assert snap.ok, snap.error
    print(f"probe round trip over {calls} GETs: p50 {percentile(times, 50):.1f} ms, "
          f"p95 {percentile(times, 95):.1f} ms, max {max(times):.1f} ms")


def bench_recorder(cluster: LocalRayCluster, hz: float, seconds: float) -> None:
    recorder = TimelineRecorder(FixedStatus(cluster.name),
                                lambda name: ServeProbe.direct(name, cluster.dashboard_url, timeout=1.0),
                                interval=1.0 / hz)
    cpu0, wall0 = time.process_time(), time.monotonic()
    with recorder.recording():
        time.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    samples = recorder.timeline().samples
    errors = sum(1 for s in samples for snap in s.snapshots.values() if not snap.ok)
    print(f"recorder at {hz:g} Hz for {wall:.1f}s: {len(samples)} samples ({len(samples) / wall:.2f}/s), "
          f"{errors} probe errors, pytest-side CPU {cpu:.2f}s = {100 * cpu / wall:.1f}% of one core")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    cluster = LocalRayCluster("bench", 5)
    started = time.monotonic()
    cluster.start()
    try:
        cluster.wait_ready()
        print(f"Ray head ready in {time.monotonic() - started:.1f}s")
        config = echo_serve_config("bench") | {"http_options": {"host": "127.0.0.1", "port": cluster.ports["serve"]}}
        with ServeProbe.direct(cluster.name, cluster.dashboard_url) as probe:
            probe.put_config(config)
            eventually(probe.snapshot, lambda s: "echo" in s.apps and s.apps["echo"].status == "RUNNING",
                       timeout=120, description="echo RUNNING")
            bench_round_trip(probe, args.calls)
        for hz in (2.0, 10.0):
            bench_recorder(cluster, hz, args.seconds)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
