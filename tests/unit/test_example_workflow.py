"""The example CI-gating workflow is a valid GitHub Actions workflow that runs the suites on kind."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

WORKFLOW = Path(__file__).resolve().parents[2] / "examples" / "kuberay-upgrade-gate.yml"
ACTIONLINT_IN_CACHE = Path(os.environ.get("PYTEST_KUBERAY_CACHE", Path.home() / ".cache" / "pytest-kuberay")) / "tools"


def test_workflow_runs_the_suites_on_kind_with_a_version_matrix_and_uploads() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    job = workflow["jobs"]["conformance"]
    assert job["strategy"]["matrix"]["kuberay-version"], "no version matrix"
    script = "\n".join(step.get("run", "") for step in job["steps"])
    assert "--kuberay-provider=kind" in script and "--junitxml=" in script
    uploads = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert len(uploads) == 2, "JUnit and artifacts uploads"
    source_job = workflow["jobs"]["from-source"]
    assert "--kuberay-source=" in "\n".join(step.get("run", "") for step in source_job["steps"])


def test_actionlint_accepts_the_workflow() -> None:
    binary = shutil.which("actionlint") or (ACTIONLINT_IN_CACHE / "actionlint")
    if not Path(binary).is_file():
        pytest.skip("actionlint not installed (make lint installs it with Go into ~/.cache/pytest-kuberay/tools)")
    result = subprocess.run([str(binary), str(WORKFLOW)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
