"""The 4189 repro through ``--kuberay-provider=existing`` on a real cluster, and proof that it deletes only its own.

``pytest-kuberay cluster up`` starts a kept cluster without KubeRay (images on its node);
pytest then runs against it as "the user's cluster": KubeRay is installed from the
release manifests, v1.5.0 gives XFAIL and v1.5.1 passes. Every object on the cluster is
listed before and after: they must be the same.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support.local_provider import NEEDS_LOCAL_PROVIDER
from tests.support.pytest_output import explain, outcomes

pytestmark = NEEDS_LOCAL_PROVIDER

REPO = Path(__file__).resolve().parents[2]
#: Objects that change by themselves on a live cluster, whoever uses it.
_CHURN = {"Event", "Lease", "EndpointSlice", "Endpoints"}


def _objects(kubeconfig: str) -> set[tuple[str, str, str]]:
    """(kind, namespace, name) of every object the API server lists, all resource types."""
    from kubernetes import config
    from kubernetes.dynamic import DynamicClient

    dynamic = DynamicClient(config.new_client_from_config(config_file=kubeconfig))
    found = set()
    for resource in dynamic.resources.search():
        if "list" not in (resource.verbs or []) or "/" in resource.name or resource.kind in _CHURN:
            continue
        try:
            items = resource.get().items
        except Exception:  # a kind that cannot be listed this way (e.g. a removed CRD's leftovers)
            continue
        for item in items:
            found.add((resource.kind, item.metadata.namespace or "", item.metadata.name))
    return found


def _cli(*args: str, env: dict[str, str]) -> str:
    proc = subprocess.run([sys.executable, "-m", "pytest_kuberay.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False, timeout=1800)
    assert proc.returncode == 0, f"pytest-kuberay {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_4189_repro_through_the_existing_provider_deletes_only_what_it_created(tmp_path: Path) -> None:
    env = {**os.environ, "PYTEST_KUBERAY_RUNS": str(tmp_path / "runs")}
    up = _cli("cluster", "up", "--images-for=v1.5.0,v1.5.1", env=env)
    try:
        kubeconfig = re.search(r"kubeconfig: (\S+)", up)
        assert kubeconfig, up
        before = _objects(kubeconfig.group(1))
        assert not [o for o in before if o[0] == "Deployment"], "the cluster must start without KubeRay"
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "suites/incremental_upgrade", "-k", "keeps_old_serve_config and surge20",
             "--kuberay-provider=existing", f"--kuberay-kubeconfig={kubeconfig.group(1)}",
             "--kuberay-version=v1.5.0,v1.5.1", "--kuberay-gateway-class=traefik",
             "--kuberay-operator-image=localhost/pytest-kuberay/kuberay-operator:{version}",
             f"--kuberay-artifacts={tmp_path / 'artifacts'}", "-p", "no:cacheprovider", "-rxX"],
            cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=2400)
        out = proc.stdout + proc.stderr
        counts = outcomes(out)
        assert (counts.get("passed"), counts.get("xfailed"), counts.get("failed")) == (1, 1, None), explain(out)
        assert "bug 4189 on v1.5.0: reproduced, as registered" in out
        assert "bug 4189 on v1.5.1: not present, as registered" in out
        after = _objects(kubeconfig.group(1))
        assert after - before == set(), f"left on the cluster: {sorted(after - before)}"
        assert before - after == set(), f"deleted although pytest-kuberay did not create it: {sorted(before - after)}"
        print(f"\n{len(before)} objects before and after, identical (kinds other than {sorted(_CHURN)})")
    finally:
        _cli("cluster", "down", env=env)
    assert not list((tmp_path / "runs").iterdir())
