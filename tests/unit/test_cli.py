"""The ``pytest-kuberay`` script: help on every subcommand, one line for bad arguments, no-cluster status."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def cli(*args: str, runs: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = None
    if runs is not None:
        import os

        env = {**os.environ, "PYTEST_KUBERAY_RUNS": str(runs)}
    return subprocess.run([sys.executable, "-m", "pytest_kuberay.cli", *args], capture_output=True, text=True,
                          env=env, check=False, timeout=120)


@pytest.mark.parametrize("args", [["--help"], ["cluster", "--help"], ["cluster", "up", "--help"],
                                  ["cluster", "status", "--help"], ["cluster", "down", "--help"],
                                  ["toolchain", "--help"], ["reap", "--help"]])
def test_every_subcommand_has_help(args: list[str]) -> None:
    proc = cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert "usage: pytest-kuberay" in proc.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["cluster"], "the following arguments are required: action"),
    (["cluster", "sideways"], "invalid choice: 'sideways'"),
    (["cluster", "up", "--wat"], "unrecognized arguments: --wat"),
    (["cluster", "up", "--kuberay-version=v9.9.9"], "unknown KubeRay release v9.9.9"),
])
def test_bad_arguments_give_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    proc = cli(*args, runs=tmp_path)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr


def test_status_and_down_with_no_cluster(tmp_path: Path) -> None:
    assert "no kept local cluster" in cli("cluster", "status", runs=tmp_path).stdout
    assert "no kept local cluster to tear down" in cli("cluster", "down", runs=tmp_path).stdout
    proc = cli("cluster", "down", "nope", runs=tmp_path)
    assert proc.returncode == 1 and "no kept local cluster nope" in proc.stderr
