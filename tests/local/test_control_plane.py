"""The local control plane for real: etcd, kube-apiserver, kube-controller-manager built from Go modules.

Needs root (network namespaces), iproute2, and either Go or the binaries already in the cache. A warm
start (binaries cached) takes a few seconds; the measured time is printed and recorded
as the ``control_plane_start_seconds`` property.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from pytest_kuberay._support import toolchain
from pytest_kuberay._support.processes import is_running
from pytest_kuberay._support.waiting import eventually
from pytest_kuberay.errors import ProviderError
from pytest_kuberay.providers.local import control_plane, network, run_registry
from pytest_kuberay.providers.local.control_plane import LocalControlPlane, run_control_plane

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create the node network namespace"
    if shutil.which("ip") is None:
        return "needs the `ip` command (iproute2)"
    try:
        cached = all(
            (toolchain.cache_root() / "bin" / n / toolchain.component_version(n) / n).is_file() for n in COMPONENTS
        )
    except Exception as exc:
        return f"cannot read the toolchain pins: {exc}"
    if not cached and shutil.which("go") is None:
        return "needs a Go toolchain (`go` on PATH) to build etcd and Kubernetes (none cached)"
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(_missing() is not None, reason=str(_missing())),
]


def _recorded(cp: LocalControlPlane) -> list[tuple[str, int, int | None]]:
    state = json.loads((cp.run_dir / "state.json").read_text())
    return [(p["name"], p["pid"], p["started_at"]) for p in state["processes"]]


def _assert_gone(pids: list[tuple[str, int, int | None]], net: str, run_dir: Path) -> None:
    alive = [f"{name} (pid {pid})" for name, pid, ticks in pids if is_running(pid, ticks)]
    assert not alive, f"left running: {alive}"
    assert not network.link_exists(net), f"veth {net} left behind"
    assert not network.netns_exists(net), f"network namespace {net} left behind"
    assert not run_dir.exists(), f"run dir {run_dir} left behind"


def _retry(fn: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    return eventually(fn, lambda v: v is not None, timeout=timeout, interval=0.2, description=what)


def test_control_plane_serves_the_api_and_leaves_nothing_behind(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    from kubernetes import client

    with run_control_plane(runs_root=tmp_path / "runs", keep_logs_in=tmp_path / "logs") as cp:
        assert cp.start_seconds is not None
        record_property("control_plane_start_seconds", round(cp.start_seconds, 2))
        print(f"\ncontrol plane start-to-ready: {cp.start_seconds:.1f}s ({cp.api_url})")
        assert cp.start_seconds < 60, f"control plane took {cp.start_seconds:.1f}s to be ready (target < 30s)"
        pids = _recorded(cp)
        assert [name for name, _, _ in pids] == list(COMPONENTS)
        net, run_dir = cp.network.name, cp.run_dir
        assert cp.api_url == f"https://{cp.network.host_ip}:{cp.api_port}"
        assert not cp.network.host_ip.startswith("127.")

        api = cp.api_client()
        try:
            version = client.VersionApi(api).get_code()
            assert version.git_version == toolchain.component_version("kube-apiserver")

            core = client.CoreV1Api(api)
            ns = f"pkr-test-{os.getpid()}"
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
            _retry(
                lambda: core.read_namespaced_service_account("default", ns),
                f"ServiceAccount default in new namespace {ns}",
            )
            _retry(lambda: core.read_namespaced_config_map("kube-root-ca.crt", ns), "kube-root-ca.crt")

            applied = core.patch_namespaced_config_map(
                "applied",
                ns,
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"k": "v"}},
                field_manager="pytest-kuberay",
                _content_type="application/apply-patch+yaml",
            )
            assert applied.data == {"k": "v"}
            assert applied.metadata is not None and applied.metadata.managed_fields is not None
            assert [(m.manager, m.operation) for m in applied.metadata.managed_fields] == [("pytest-kuberay", "Apply")]

            # ServiceAccount admission is on: a pod gets the projected token volume, and tokens can be issued.
            pod = core.create_namespaced_pod(
                ns,
                client.V1Pod(
                    metadata=client.V1ObjectMeta(name="p"),
                    spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="none")]),
                ),
            )
            assert pod.spec is not None
            assert any(v.name.startswith("kube-api-access-") for v in pod.spec.volumes or [])
            token = core.create_namespaced_service_account_token(
                "default", ns, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
            )
            assert token.status is not None
            assert (token.status.token or "").count(".") == 2

            # The scheduler is running: it tries to bind the pod (no node yet, so it stays Pending).
            def scheduled_condition() -> Any:
                status = core.read_namespaced_pod("p", ns).status
                conditions = (status.conditions if status is not None else None) or []
                return next((c for c in conditions if c.type == "PodScheduled"), None)

            _retry(scheduled_condition, "the scheduler to set PodScheduled on the pod")
        finally:
            api.close()

        # The static bearer token (for Traefik and the like) is in system:masters.
        with httpx.Client(verify=ssl.create_default_context(cafile=str(cp.ca_file))) as http:
            reply = http.get(
                f"{cp.api_url}/api/v1/namespaces/kube-system/secrets",
                headers={"Authorization": f"Bearer {cp.admin_token}"},
            )
        assert reply.status_code == 200, reply.text

    _assert_gone(pids, net, run_dir)
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == sorted(f"{n}.log" for n in COMPONENTS)


def test_a_component_that_exits_is_reported_at_once_and_nothing_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(control_plane, "CONTROLLERS", "*,-no-such-controller")
    root = tmp_path / "runs"
    started = time.monotonic()
    with pytest.raises(ProviderError) as err, run_control_plane(runs_root=root, timeout=120):
        pytest.fail("start() should have failed")
    assert time.monotonic() - started < 60, "an exited component must not be waited for until the timeout"
    message = str(err.value)
    assert "kube-controller-manager exited while waiting for" in message
    assert '\\"no-such-controller\\" is not in the list of known controllers' in message
    assert list(root.iterdir()) == []
    assert not [name for name, owner in network.our_links().items() if owner.startswith(str(root))]


_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from pytest_kuberay.providers.local.control_plane import run_control_plane

    with run_control_plane(runs_root=Path(sys.argv[1]), die_with_parent=sys.argv[2] == "1") as cp:
        print(json.dumps({"run_dir": str(cp.run_dir), "network": cp.network.name}), flush=True)
        time.sleep(600)
    """
)


@pytest.mark.parametrize("die_with_parent", [False, True], ids=["processes-outlive-owner", "pdeathsig"])
def test_reaper_cleans_up_after_an_owner_killed_with_sigkill(tmp_path: Path, die_with_parent: bool) -> None:
    root = tmp_path / "runs"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(root), "1" if die_with_parent else "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line, f"the child failed to start a control plane (exit {child.wait()})"
        info = json.loads(line)
        run_dir, net = Path(info["run_dir"]), info["network"]
        state = json.loads((run_dir / "state.json").read_text())
        pids = [(p["name"], p["pid"], p["started_at"]) for p in state["processes"]]
        assert len(pids) == 4
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()

    if not die_with_parent:
        time.sleep(0.5)
        assert all(is_running(pid, ticks) for _, pid, ticks in pids), "processes should outlive their owner"
    assert network.link_exists(net) and network.netns_exists(net)
    assert run_dir.exists()

    reaped = run_registry.reap_stale_runs(root)

    assert [r.run_id for r in reaped] == [run_dir.name]
    assert {f"veth {net}", f"network namespace {net}"} <= set(reaped[0].removed)
    if not die_with_parent:
        assert {f"process {name} (pid {pid})" for name, pid, _ in pids} <= set(reaped[0].removed)
    eventually(
        lambda: [pid for _, pid, ticks in pids if is_running(pid, ticks)],
        lambda alive: not alive,
        timeout=10,
        interval=0.1,
        description="the reaped run's processes to be gone",
    )
    _assert_gone(pids, net, run_dir)
