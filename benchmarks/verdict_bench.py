"""Time to verdict of the 4189 repro, by phase, against the physical minimum of the same run.

Prints figures; asserts nothing. Run as root: ``make bench-verdict [VERSION=v1.5.1]``, or
``.venv/bin/python benchmarks/verdict_bench.py --version v1.5.1 [--kept]``.

Each run is ``make repro``'s pytest command in a subprocess with its own artifacts directory.
The phases come from the ``phases.json`` the session writes (timestamps the code took), the
pending cluster's start from the recorded timeline. The minimum is what no harness can avoid:
the control plane's start, the first Ray cluster's start (its RayCluster's creation to serving), and the operator's
own upgrade: the pending cluster's start plus (100 / stepSize) x intervalSeconds.

``--kept`` first starts a kept cluster with ``pytest-kuberay cluster up`` (not timed), then
times the repro on it with ``--kuberay-keep-cluster``, then tears it down. There the control
plane's start is not part of the minimum (it already runs).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _repro(version: str, artifacts: Path, extra: list[str]) -> tuple[float, int, str]:
    cmd = [sys.executable, "-m", "pytest", "suites/incremental_upgrade", "-k", "keeps_old_serve_config and surge20",
           f"--kuberay-version={version}", "--kuberay-provider=local", f"--kuberay-artifacts={artifacts}",
           "-p", "no:cacheprovider", "-q", *extra]
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    return time.monotonic() - started, proc.returncode, proc.stdout[-1500:] + proc.stderr[-1500:]


def _pending_start(timeline: dict) -> float | None:
    """Seconds from applying the new spec until the pending cluster's apps all run (from the samples)."""
    applied = timeline.get("markers", {}).get("upgrade applied")
    if applied is None:
        return None
    for sample in timeline["samples"]:
        status = sample.get("status") or {}
        pending = status.get("pending") or {}
        apps = pending.get("app_statuses") or {}
        if sample["t"] >= applied and apps and all(v == "RUNNING" for v in apps.values()):
            return float(sample["t"] - applied)
    return None


def _traffic_steps_needed(timeline: dict, plan: dict) -> float:
    """Traffic steps the verdict had to wait for: all of them, or those before a recording that ended early.

    A recording that ended at its verdict (marker ``verdict reached``) needed only the traffic
    steps the operator took until then; each waits ``intervalSeconds`` at the least.
    """
    verdict_at = timeline.get("markers", {}).get("verdict reached")
    if verdict_at is None:
        return 100 / max(1, int(plan.get("step_size_percent") or 100))
    reached = {((s.get("status") or {}).get("pending") or {}).get("traffic_routed_percent")
               for s in timeline.get("samples", []) if s["t"] <= verdict_at}
    return float(len({t for t in reached if t}))


def report(label: str, wall: float, artifacts: Path, kept: bool) -> None:
    phases = json.loads((artifacts / "phases.json").read_text())["phases"]
    [timeline_file] = list(artifacts.glob("*/timeline.json")) or [None]
    timeline = json.loads(timeline_file.read_text()) if timeline_file else {}
    plan = timeline.get("plan") or {}
    print(f"\n== {label}")
    for phase in phases:
        print(f"  {phase['name'][:70]:<72} at {phase['start']:6.1f}s  {phase['seconds']:6.1f}s")
    by_name = {p["name"]: p for p in phases}
    verdicts = [p for p in phases if p["name"].startswith("verdict ")]
    verdict_at = verdicts[0]["start"] if verdicts else wall
    control_plane = 0.0 if kept else by_name.get("control plane", {}).get("seconds", 0.0)
    serving = next((p for p in phases if p["name"].startswith("RayService ")), None)
    created = next((p for p in phases if p["name"].startswith("first RayCluster of ")), None)
    # from the first RayCluster's creation to serving; the serving wait alone starts after the operator's Ready
    first_cluster = (serving["start"] + serving["seconds"] - created["start"] if serving and created
                     else serving["seconds"] if serving else 0.0)
    pending = _pending_start(timeline) or 0.0
    steps = _traffic_steps_needed(timeline, plan)
    upgrade_min = pending + steps * float(plan.get("interval_seconds") or 0)
    minimum = control_plane + first_cluster + upgrade_min
    print(f"  minimum: control plane {control_plane:.1f}s + first Ray cluster {first_cluster:.1f}s + pending cluster "
          f"{pending:.1f}s + {steps:.0f} x {plan.get('interval_seconds')}s traffic steps = {minimum:.1f}s"
          + (" (the recording ended at the verdict: only the traffic steps before it count)"
             if "verdict reached" in timeline.get("markers", {}) else ""))
    print(f"  wall time (with teardown) {wall:.1f}s")
    print(f"time to verdict: {verdict_at:.1f} s, minimum {minimum:.1f} s, ratio {verdict_at / minimum:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--version", default="v1.5.1")
    parser.add_argument("--kept", action="store_true", help="time the repro on a kept cluster")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-verdict-") as tmp:
        artifacts = Path(tmp) / "artifacts"
        if args.kept:
            subprocess.run([sys.executable, "-m", "pytest_kuberay.cli", "cluster", "up",
                            f"--kuberay-version={args.version}"], cwd=ROOT, check=True, capture_output=True)
        try:
            wall, code, tail = _repro(args.version, artifacts, ["--kuberay-keep-cluster"] if args.kept else [])
        finally:
            if args.kept:
                subprocess.run([sys.executable, "-m", "pytest_kuberay.cli", "cluster", "down"], cwd=ROOT,
                               check=False, capture_output=True)
        if code not in (0,):
            print(f"pytest exited {code}:\n{tail}")
        report(f"{args.version} {'kept cluster' if args.kept else 'fresh cluster, warm caches'}", wall, artifacts,
               args.kept)


if __name__ == "__main__":
    main()
