"""Local provider: the recorded cold build of every binary and image, and the measured warm start-to-ready.

Prints figures; asserts nothing. Run as root: ``make bench-local`` or
``.venv/bin/python benchmarks/local_cluster_bench.py [--runs 3] [--version v1.5.1]``.

Cold build times are the ones recorded when each binary was built (``build.json``
beside it) and when each image was built (its archive's build record); ``--cold``
rebuilds everything into an empty cache first. Warm start times come from the stack's
own phase timer: control plane, node (containerd, kubelet, kube-proxy, CoreDNS until the
Node is Ready), Traefik, the operator, and the wait for the Ray image import that runs in
the background meanwhile.
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

from pytest_kuberay._support import toolchain
from pytest_kuberay.providers.local.images import ensure_image, pause_image
from pytest_kuberay.providers.local.images.cache import build_records
from pytest_kuberay.settings import default_settings
from pytest_kuberay.stacks.local import local_stack
from pytest_kuberay.versions import parse_version


def print_build_times(version: str) -> None:
    names = (*toolchain.CONTROL_PLANE_COMPONENTS, *toolchain.NODE_COMPONENTS)
    binaries = [toolchain.ensure_component(n) for n in names]
    binaries.append(toolchain.ensure_operator(version))
    total = 0.0
    for binary in binaries:
        meta = json.loads(toolchain.build_record_path(binary).read_text())
        total += float(meta["build_seconds"])
        print(f"cold build {meta['what']:<40} {meta['build_seconds']:>7.1f}s  (built {meta['built_at']})")
    pause_image()
    ensure_image(default_settings().ray_image_for(parse_version(version)))
    for record in build_records():
        total += float(record["build_seconds"])
        print(f"cold build {record['what'][:40]:<40} {record['build_seconds']:>7.1f}s  (built {record['built_at']})")
    print(f"cold build total {total:>39.1f}s")


def time_warm_start(version: str, runs: int) -> None:
    phases: dict[str, list[float]] = {}
    kube_version = parse_version(version)
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            settings = default_settings(artifacts_dir=Path(tmp), versions=(kube_version,))
            started = time.monotonic()
            with local_stack(settings) as stack:
                operator = stack.install_kuberay(kube_version)
                installed = time.monotonic()
                operator.ready()
                done = time.monotonic()
                stack.phases[f"operator {version} applied"] = installed - started
                stack.phases[f"operator {version} Ready"] = done - installed
                operator.stop()
                for name, seconds in stack.phases.items():
                    phases.setdefault(name, []).append(seconds)
            phases.setdefault("total start-to-ready", []).append(done - started)
    for name, values in phases.items():
        print(f"warm start {name:<58} median {statistics.median(values):5.1f}s  "
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
