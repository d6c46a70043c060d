"""Local provider: cold build times and warm start-to-ready of the control plane, Traefik and the operator.

Prints figures; asserts nothing. Run as root: ``make bench-local`` or
``.venv/bin/python benchmarks/local_cluster_bench.py [--runs 3] [--version v1.5.1]``.

Cold build times are the ones recorded when each binary was built (``build.json``
next to it in the cache); ``--cold`` rebuilds everything into a fresh cache
first, which takes many minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_kuberay.providers.local import toolchain
from pytest_kuberay.providers.local.stack import local_stack
from pytest_kuberay.settings import default_settings
from pytest_kuberay.versions import parse_version


def print_build_times(version: str) -> None:
    binaries = [toolchain.ensure_component(n) for n in
                ("etcd", "kube-apiserver", "kube-controller-manager", "traefik")]
    binaries.append(toolchain.ensure_operator(version))
    total = 0.0
    for binary in binaries:
        meta = json.loads(toolchain.build_record_path(binary).read_text())
        total += float(meta["build_seconds"])
        print(f"cold build {meta['what']:<32} {meta['build_seconds']:>7.1f}s  (built {meta['built_at']})")
    print(f"cold build total {total:>31.1f}s")


def time_warm_start(version: str, runs: int) -> None:
    phases: dict[str, list[float]] = {"control plane": [], "+ traefik + node": [], "+ operator": [], "total": []}
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            settings = default_settings(artifacts_dir=Path(tmp))
            started = time.monotonic()
            with local_stack(settings) as stack:
                ready = time.monotonic()
                cp = stack.cluster.control_plane.start_seconds or 0.0
                operator = stack.install_kuberay(parse_version(version))
                done = time.monotonic()
                operator.stop()
            phases["control plane"].append(cp)
            phases["+ traefik + node"].append(ready - started - cp)
            phases["+ operator"].append(done - ready)
            phases["total"].append(done - started)
    for name, values in phases.items():
        print(f"warm start {name:<18} median {statistics.median(values):5.1f}s  "
              f"min {min(values):5.1f}s  max {max(values):5.1f}s  ({runs} runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--version", default="v1.5.1")
    parser.add_argument("--cold", action="store_true", help="rebuild everything into a fresh cache first")
    args = parser.parse_args()
    if args.cold:
        os.environ["PYTEST_KUBERAY_CACHE"] = tempfile.mkdtemp(prefix="pkr-cold-cache-")
        os.environ["GOCACHE"] = tempfile.mkdtemp(prefix="pkr-cold-gocache-")
    print_build_times(args.version)
    time_warm_start(args.version, args.runs)


if __name__ == "__main__":
    main()
