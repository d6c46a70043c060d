"""Ctrl-C in the middle of an upgrade leaves nothing of the run on the machine.

pytest runs the 4189 case on the local provider in a subprocess; once the live lines show
the upgrade under way it gets SIGINT, like a person pressing Ctrl-C. Afterwards nothing of
that run may remain: no process (kubelet, containerd, shims, containers, control plane),
no container state or run directory, no mount under it, no network namespace or veth, no
kubepods cgroup, no iptables chain.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pytest_kuberay.providers.local import network
from pytest_kuberay.providers.local.node.cgroups import CgroupTree
from pytest_kuberay.providers.local.run_registry import RUN_MARKER_ENV
from tests.support.local_provider import NEEDS_LOCAL_PROVIDER

pytestmark = NEEDS_LOCAL_PROVIDER

REPO = Path(__file__).resolve().parents[2]


def _marked(run_id: str) -> list[str]:
    found = []
    for proc in psutil.process_iter(["pid", "name"]):
        try:
            if proc.environ().get(RUN_MARKER_ENV) == run_id:
                found.append(f"{proc.info['name']} ({proc.pid})")
        except psutil.Error:
            continue
    return found


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupt_mid_upgrade_leaves_nothing_behind(tmp_path: Path, signum: signal.Signals) -> None:
    """Ctrl-C, or the SIGTERM of a CI timeout or ``kill``: the same teardown runs."""
    runs = tmp_path / "runs"
    env = {**os.environ, "PYTEST_KUBERAY_RUNS": str(runs)}
    argv = [sys.executable, "-m", "pytest", "suites/incremental_upgrade", "-k", "keeps_old_serve_config and surge20",
            "--kuberay-version=v1.5.1", "--kuberay-provider=local", f"--kuberay-artifacts={tmp_path / 'art'}",
            "-p", "no:cacheprovider", "-s"]
    child = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    state: dict = {}
    output: list[str] = []
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + 900
        for line in child.stdout:
            output.append(line)
            if not state:
                states = list(runs.glob("*/state.json"))
                if states:
                    state = json.loads(states[0].read_text())
            if "pending  20%" in line:  # the live step line: the pending cluster is up, mid-upgrade
                break
            assert time.monotonic() < deadline, "the upgrade never started:\n" + "".join(output[-30:])
        else:
            pytest.fail("pytest ended before the upgrade was under way:\n" + "".join(output[-40:]))
        state = json.loads(next(runs.glob("*/state.json")).read_text())  # now with network and cgroups
        child.send_signal(signum)
        rest, _ = child.communicate(timeout=240)
        output.append(rest)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    text = "".join(output)
    assert "KeyboardInterrupt" in text, text[-3000:]

    run_id, net = state["run_id"], state["network"]
    assert state["cgroup_root"] and net
    assert not list(runs.iterdir()), "the run directory (and the containerd state in it) is left"
    assert not _marked(run_id), "processes of the run are left"
    leftover_cgroups = [d for d in CgroupTree(run_id).dirs() if d.exists()]
    assert not leftover_cgroups, f"cgroups (and the kubepods under them) are left: {leftover_cgroups}"
    assert not network.netns_exists(net), f"network namespace {net} is left"
    assert not network.link_exists(net), f"veth {net} is left"
    mounts = [p.mountpoint for p in psutil.disk_partitions(all=True) if str(runs) in p.mountpoint]
    assert not mounts, f"mounts are left: {mounts}"
    assert "KUBE-" not in subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    for name in ("raylet", "gcs_server", "containerd-shim-runc-v2", "kubelet"):
        assert not [p for p in psutil.process_iter(["name"]) if p.info["name"] == name], f"a {name} is left"
