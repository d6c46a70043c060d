"""The local provider's toolchain against real Go: a real build (or cache hit) and the real v1.5.0 source.

These use the normal cache (``cache_root()``), so after the first run they take seconds.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_kuberay._support import toolchain as tc
from pytest_kuberay._support.toolchain.operator import operator_module_dir

pytestmark = pytest.mark.slow


def _need_go_or_cache(name: str) -> None:
    cached = tc.cache_root() / "bin" / name / tc.component_version(name) / name
    if shutil.which("go") is None and not cached.is_file():
        pytest.skip("no `go` on PATH and no cached binary")


def test_etcd_builds_or_is_reused_and_reports_its_version() -> None:
    _need_go_or_cache("etcd")
    version = tc.component_version("etcd")
    binary = tc.ensure_component("etcd")
    assert binary == tc.cache_root() / "bin" / "etcd" / version / "etcd"
    assert (binary.parent / "build.log").is_file()
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30, check=True)
    assert f"etcd Version: {version.lstrip('v')}" in out.stdout
    # A second call is a cache hit: same path, no rebuild.
    mtime = binary.stat().st_mtime_ns
    assert tc.ensure_component("etcd") == binary
    assert binary.stat().st_mtime_ns == mtime


def _function(source: str, name: str) -> str:
    start = re.search(rf"^func \(r \*RayServiceReconciler\) {name}\(", source, re.MULTILINE)
    assert start is not None
    return source[start.start() : source.index("\n}\n", start.end()) + 2]


@pytest.mark.skipif(shutil.which("go") is None, reason="needs `go` to fetch modules")
def test_pr4212_build_step_turns_v150_into_v151() -> None:
    """On the real sources, v1.5.0 + our PR 4212 step equals v1.5.1's function (apart from a comment)."""
    rel = Path(tc.KNOWN_PATCHES[4212].path)
    v150 = (operator_module_dir("v1.5.0") / rel).read_text()
    v151 = (operator_module_dir("v1.5.1") / rel).read_text()
    patched = _function(tc.patch_pr4212(v150), "applyServeTargetCapacity")
    upstream = _function(v151, "applyServeTargetCapacity")

    def code(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.strip().startswith("//")]

    assert code(patched) == code(upstream)
