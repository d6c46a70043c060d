"""``--kuberay-keep-cluster`` on the local provider: the cluster outlives pytest, the next run reuses it.

The first session starts a kept cluster with KubeRay v1.5.1; the second one (v1.5.0) finds it,
reinstalls only the operator, and leaves it running too; ``pytest-kuberay cluster down`` then
removes everything. The tests inside only touch the operator: no upgrade is needed to prove reuse.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from pytest_kuberay.providers.local import network
from tests.support.local_provider import NEEDS_LOCAL_PROVIDER

pytestmark = NEEDS_LOCAL_PROVIDER

SESSION_TEST = """
def test_operator(kuberay_cluster, kuberay_operator, kuberay_version):
    from kubernetes import client

    apps = client.AppsV1Api(kuberay_cluster.handle.api_client)
    image = apps.read_namespaced_deployment("kuberay-operator", "kuberay-system").spec.template.spec.containers[0].image
    print(f"KUBECONFIG={kuberay_cluster.handle.kubeconfig} IMAGE={image}")
    assert image.endswith(":" + kuberay_version.label)
"""


def _session(tmp_path: Path, version: str, env: dict[str, str]) -> tuple[str, str, float]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "test_session.py", f"--kuberay-version={version}",
                           "--kuberay-provider=local", "--kuberay-keep-cluster", "-p", "no:cacheprovider", "-s",
                           f"--kuberay-artifacts={tmp_path / 'artifacts'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    match = re.search(r"KUBECONFIG=(\S+) IMAGE=(\S+)", out)
    assert match, out[-2000:]
    return match.group(1), match.group(2), time.monotonic() - started


def test_a_kept_cluster_is_reused_and_only_the_operator_is_reinstalled(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    env = {**os.environ, "PYTEST_KUBERAY_RUNS": str(runs)}
    (tmp_path / "test_session.py").write_text(SESSION_TEST)
    try:
        first_config, first_image, first = _session(tmp_path, "v1.5.1", env)
        [run_dir] = list(runs.iterdir())
        assert Path(first_config).is_file(), "the kept cluster's kubeconfig is gone after the session"
        second_config, second_image, second = _session(tmp_path, "v1.5.0", env)
        assert second_config == first_config, "the second session started another cluster"
        assert list(runs.iterdir()) == [run_dir]
        assert (first_image, second_image) == ("localhost/pytest-kuberay/kuberay-operator:v1.5.1",
                                               "localhost/pytest-kuberay/kuberay-operator:v1.5.0")
        print(f"\nfirst session (starts the kept cluster) {first:.0f}s, second (reuses it) {second:.0f}s")
    finally:
        down = subprocess.run([sys.executable, "-m", "pytest_kuberay.cli", "cluster", "down"], env=env,
                              capture_output=True, text=True, check=False)
    assert down.returncode == 0, down.stderr
    assert not list(runs.iterdir())
    assert not [name for name, owner in network.our_links().items() if owner.startswith(str(runs))]
