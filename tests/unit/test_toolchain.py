"""Pure parts of the local provider's Go toolchain: paths, versions, the PR 4212 build step, errors.

Nothing here runs Go; tests/local/test_toolchain_build.py builds a real binary.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_kuberay._support import toolchain as tc
from pytest_kuberay._support.toolchain.operator import resolve_operator_source
from pytest_kuberay._support.toolchain.recipes import go_version_tuple
from pytest_kuberay.errors import ToolchainError

# A hand-written function with the shape of v1.5.0's applyServeTargetCapacity: the call to remove
# is the last statement, and other functions around it also call cacheServeConfig.
GO_BEFORE = """\
package ray

func (r *RayServiceReconciler) updateServeDeployment(ctx context.Context, clusterName string) error {
	r.cacheServeConfig(rayServiceInstance, clusterName)
	return nil
}

// applyServeTargetCapacity updates the target_capacity for a given RayCluster's Serve applications.
func (r *RayServiceReconciler) applyServeTargetCapacity(ctx context.Context, goal int32) error {
	cachedConfig := r.getServeConfigFromCache(rayServiceInstance, rayClusterInstance.Name)
	if cachedConfig == "" {
		cachedConfig = rayServiceInstance.Spec.ServeConfigV2
	}
	// Update the status fields and cache new Serve config.
	if rayClusterInstance.Name == rayServiceInstance.Status.ActiveServiceStatus.RayClusterName {
		rayServiceInstance.Status.ActiveServiceStatus.TargetCapacity = ptr.To(goalTargetCapacity)
	}
	r.cacheServeConfig(rayServiceInstance, rayClusterInstance.Name)

	return nil
}

func (r *RayServiceReconciler) reconcileServe(ctx context.Context) error {
	r.cacheServeConfig(rayServiceInstance, rayClusterInstance.Name)
	return nil
}
"""


# ---------------------------------------------------------------------------------------------
# cache_root
# ---------------------------------------------------------------------------------------------


def test_cache_root_prefers_explicit_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PYTEST_KUBERAY_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert tc.cache_root() == tmp_path / "mine"


def test_cache_root_uses_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PYTEST_KUBERAY_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert tc.cache_root() == tmp_path / "xdg" / "pytest-kuberay"


def test_cache_root_falls_back_to_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PYTEST_KUBERAY_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert tc.cache_root() == tmp_path / ".cache" / "pytest-kuberay"


def test_empty_variables_are_ignored(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PYTEST_KUBERAY_CACHE", "")
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert tc.cache_root() == tmp_path / ".cache" / "pytest-kuberay"


# ---------------------------------------------------------------------------------------------
# Versions
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "release", "pr", "label"),
    [
        ("v1.5.0", "v1.5.0", None, "v1.5.0"),
        ("v1.5.1", "v1.5.1", None, "v1.5.1"),
        (" v1.6.2 ", "v1.6.2", None, "v1.6.2"),
        ("v1.5.0+pr4212", "v1.5.0", 4212, "v1.5.0+pr4212"),
    ],
)
def test_parse_operator_version(text: str, release: str, pr: int | None, label: str) -> None:
    parsed = tc.parse_operator_version(text)
    assert (parsed.release, parsed.pr, parsed.label, str(parsed)) == (release, pr, label, label)


@pytest.mark.parametrize("text", ["1.5.0", "v1.5", "latest", "v1.5.0+4212", "v1.5.0-pr4212", ""])
def test_malformed_operator_version_names_served_releases(text: str) -> None:
    with pytest.raises(ToolchainError) as info:
        tc.parse_operator_version(text)
    message = str(info.value)
    assert "vX.Y.Z" in message
    for release in tc.SERVED_OPERATOR_RELEASES:
        assert release in message


def test_unknown_pr_is_refused() -> None:
    with pytest.raises(ToolchainError, match=r"PR 9999.*known PRs: 4212"):
        tc.parse_operator_version("v1.5.0+pr9999")


def test_required_version_reads_single_line_and_block_requires() -> None:
    go_mod = (
        "module x\n\ngo 1.25.0\n\nrequire go.etcd.io/etcd/server/v3 v3.6.14\n\n"
        "require (\n\tk8s.io/kubernetes v1.34.4 // indirect\n\tk8s.io/api v0.34.4\n)\n"
        "replace k8s.io/api => k8s.io/api v0.34.4\n"
    )
    assert tc.required_version(go_mod, "go.etcd.io/etcd/server/v3") == "v3.6.14"
    assert tc.required_version(go_mod, "k8s.io/kubernetes") == "v1.34.4"
    assert tc.required_version(go_mod, "k8s.io/api") == "v0.34.4"
    assert tc.required_version(go_mod, "k8s.io") is None
    assert tc.go_directive(go_mod) == "1.25.0"


def test_repo_go_mods_pin_every_component() -> None:
    """The shipped toolchain/ modules name a version for each component (it is the cache key)."""
    versions = {name: tc.component_version(name) for name in tc.COMPONENTS}
    assert versions["kube-apiserver"] == versions["kube-controller-manager"] == versions["kube-scheduler"]
    assert all(v.startswith("v") for v in versions.values()), versions


def test_kubernetes_go_mod_replaces_staging_with_matching_version() -> None:
    text = (tc.toolchain_dir() / "kubernetes" / "go.mod").read_text()
    kube = tc.required_version(text, "k8s.io/kubernetes")
    assert kube is not None
    staging = "v0." + kube.split(".", 1)[1]  # v1.34.4 -> v0.34.4
    replaced = [line.split()[0] for line in text.splitlines() if "=> k8s.io/" in line]
    assert len(replaced) == 31
    for line in text.splitlines():
        if "=> k8s.io/" in line:
            assert line.split()[-1] == staging, line


@pytest.mark.parametrize(
    ("have", "need", "ok"),
    [("go1.26.8", "1.25.0", True), ("go1.25", "1.25.0", True), ("go1.24.3", "1.25", False)],
)
def test_go_version_comparison(have: str, need: str, ok: bool) -> None:
    assert (go_version_tuple(have) >= go_version_tuple(need)) is ok


# ---------------------------------------------------------------------------------------------
# The PR 4212 build step
# ---------------------------------------------------------------------------------------------


def test_patch_pr4212_removes_only_the_call_in_apply_serve_target_capacity() -> None:
    # The call right after the status update exists only in applyServeTargetCapacity.
    target = "\t}\n\tr.cacheServeConfig(rayServiceInstance, rayClusterInstance.Name)\n\n\treturn nil"
    assert GO_BEFORE.count(target) == 1
    expected = GO_BEFORE.replace(target, "\t}\n\n\treturn nil")
    after = tc.patch_pr4212(GO_BEFORE)
    assert after == expected
    # The same call in the functions before and after it is left alone.
    assert after.count("r.cacheServeConfig(") == 2


def test_patch_pr4212_refuses_already_fixed_source() -> None:
    fixed = tc.patch_pr4212(GO_BEFORE)
    with pytest.raises(ToolchainError, match="found 0"):
        tc.patch_pr4212(fixed)


def test_patch_pr4212_refuses_two_calls() -> None:
    doubled = GO_BEFORE.replace(
        "\tr.cacheServeConfig(rayServiceInstance, rayClusterInstance.Name)\n\n\treturn nil",
        "\tr.cacheServeConfig(rayServiceInstance, rayClusterInstance.Name)\n"
        "\tr.cacheServeConfig(rayServiceInstance, rayClusterInstance.Name)\n\n\treturn nil",
    )
    assert doubled != GO_BEFORE
    with pytest.raises(ToolchainError, match="found 2"):
        tc.patch_pr4212(doubled)


def test_patch_pr4212_refuses_source_without_the_function() -> None:
    with pytest.raises(ToolchainError, match="applyServeTargetCapacity not found"):
        tc.patch_pr4212("package ray\n\nfunc other() {}\n")


# ---------------------------------------------------------------------------------------------
# Source checkouts
# ---------------------------------------------------------------------------------------------


def _fake_checkout(root: Path) -> Path:
    op = root / "ray-operator"
    (op / "controllers").mkdir(parents=True)
    (op / "go.mod").write_text(f"module {tc.OPERATOR_MODULE}\n\ngo 1.24.0\n")
    (op / "go.sum").write_text("")
    (op / "main.go").write_text("package main\n\nfunc main() {}\n")
    (op / "controllers" / "c.go").write_text("package controllers\n")
    (op / "README.md").write_text("docs\n")
    return op


def test_operator_source_accepts_repo_root_or_operator_dir(tmp_path: Path) -> None:
    op = _fake_checkout(tmp_path)
    assert resolve_operator_source(tmp_path) == op.resolve()
    assert resolve_operator_source(op) == op.resolve()
    with pytest.raises(ToolchainError, match="not a KubeRay checkout"):
        resolve_operator_source(tmp_path / "ray-operator" / "controllers")


def test_source_hash_changes_with_go_files_only(tmp_path: Path) -> None:
    op = _fake_checkout(tmp_path)
    first = tc.source_tree_hash(op)
    (op / "README.md").write_text("other docs\n")
    (op / ".git").mkdir()
    (op / ".git" / "x.go").write_text("package hidden\n")
    assert tc.source_tree_hash(op) == first
    (op / "controllers" / "c.go").write_text("package controllers\n\n// edited\n")
    assert tc.source_tree_hash(op) != first


# ---------------------------------------------------------------------------------------------
# Errors a person can act on
# ---------------------------------------------------------------------------------------------


def test_missing_go_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no `go`
    monkeypatch.setenv("PYTEST_KUBERAY_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ToolchainError) as info:
        tc.ensure_component("etcd")
    message = str(info.value)
    assert "`go` is not on PATH" in message
    assert f"install Go >= {tc.MIN_GO}" in message
    with pytest.raises(ToolchainError, match="not on PATH"):
        tc.ensure_operator("v1.5.0")


def test_unknown_component_lists_known_ones() -> None:
    with pytest.raises(ToolchainError, match="kube-apiserver"):
        tc.ensure_component("kubectl")


def test_cached_binary_is_reused_without_go(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A warm cache needs no Go at all: the binary path is returned as is."""
    monkeypatch.setenv("PYTEST_KUBERAY_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    version = tc.component_version("etcd")
    binary = tmp_path / "bin" / "etcd" / version / "etcd"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    assert tc.ensure_component("etcd") == binary
    op = tmp_path / "bin" / "kuberay-operator" / "v1.5.0+pr4212" / tc.OPERATOR_BINARY
    op.parent.mkdir(parents=True)
    op.write_text("")
    assert tc.ensure_operator("v1.5.0+pr4212") == op


def test_missing_toolchain_dir_is_explained(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PYTEST_KUBERAY_TOOLCHAIN", str(tmp_path))
    with pytest.raises(ToolchainError, match="PYTEST_KUBERAY_TOOLCHAIN"):
        tc.component_version("traefik")
