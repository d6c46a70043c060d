"""KubeRay operator binaries: a release from the Go proxy, a release with a known fix applied, or a checkout."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from pytest_kuberay._support.cache import cache_root
from pytest_kuberay._support.toolchain.binaries import build_binary
from pytest_kuberay._support.toolchain.go import build_env, go_binary, module_info, neutral_cwd, run_go
from pytest_kuberay._support.toolchain.patches import KNOWN_PATCHES
from pytest_kuberay._support.toolchain.recipes import (
    OPERATOR_BINARY,
    OPERATOR_MODULE,
    SERVED_OPERATOR_RELEASES,
    parse_operator_version,
)
from pytest_kuberay.errors import ToolchainError

log = logging.getLogger(__name__)


def operator_module_dir(release: str) -> Path:
    """Download a ray-operator release into the module cache, or explain which releases are served."""
    info = module_info(OPERATOR_MODULE, release)
    if "Error" in info or not info.get("Dir"):
        raise ToolchainError(
            f"KubeRay operator {release} is not available from the Go module proxy "
            f"({str(info.get('Error', 'no module directory')).splitlines()[0]}). "
            f"Releases known to be served: {', '.join(SERVED_OPERATOR_RELEASES)}; "
            "or pass a local checkout of the kuberay repo as the operator source."
        )
    return Path(str(info["Dir"]))


def _make_writable(root: Path) -> None:
    """Module-cache files are read-only; a copy must be writable to patch it and to delete it later."""
    for dirpath, dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for fname in filenames:
            path = os.path.join(dirpath, fname)
            if not os.path.islink(path):
                os.chmod(path, 0o644)
        for dname in dirnames:
            os.chmod(os.path.join(dirpath, dname), 0o755)


def resolve_operator_source(source: Path) -> Path:
    """Accept a kuberay checkout's root or its ray-operator/ directory."""
    source = source.expanduser().resolve()
    for candidate in (source, source / "ray-operator"):
        go_mod = candidate / "go.mod"
        if go_mod.is_file() and re.search(
            rf"^module\s+{re.escape(OPERATOR_MODULE)}\s*$", go_mod.read_text(), re.MULTILINE
        ):
            return candidate
    raise ToolchainError(
        f"{source} is not a KubeRay checkout: expected {source}/ray-operator/go.mod or {source}/go.mod "
        f"declaring module {OPERATOR_MODULE}."
    )


def source_tree_hash(root: Path) -> str:
    """sha256 over the relative paths and contents of every *.go, go.mod and go.sum under ``root``.

    Hidden directories are skipped. Any edit to the checkout changes the hash, so it rebuilds.
    """
    digest = hashlib.sha256()
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fname in filenames:
            if fname.endswith(".go") or fname in ("go.mod", "go.sum"):
                files.append(Path(dirpath) / fname)
    for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def _sanitize_label(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", label) or "dev"


def ensure_operator(version: str, source: Path | None = None) -> Path:
    """Path to a KubeRay operator binary, building it on first use.

    * ``v1.5.1``: ``go install`` of that release from the Go module proxy.
    * ``v1.5.0+pr4212``: v1.5.0's module source with upstream PR 4212 applied as a build step,
      to tell the bug from the fix without waiting for a release.
    * ``source=<checkout>``: build the checkout as is; ``version`` is only a label, and the cache
      key includes a hash of the sources so an edited checkout rebuilds.
    """
    bin_root = cache_root() / "bin" / "kuberay-operator"
    if source is not None:
        op_dir = resolve_operator_source(source)
        label = f"{_sanitize_label(version)}-src-{source_tree_hash(op_dir)[:12]}"
        dest = bin_root / label / OPERATOR_BINARY
        if dest.is_file():
            return dest

        def build_source(out: Path, log_path: Path) -> None:
            args = [go_binary(), "build", "-v", "-trimpath", "-mod=readonly", "-o", str(out), "."]
            run_go(args, cwd=op_dir, env=build_env(), log_path=log_path, what=f"ray-operator {label}")

        return build_binary(f"ray-operator {label}", dest, build_source, {"version": version, "source": str(op_dir)})

    parsed = parse_operator_version(version)
    dest = bin_root / parsed.label / OPERATOR_BINARY
    if dest.is_file():
        return dest
    # Before announcing a build: a readable error when the proxy refuses the release.
    module_dir = operator_module_dir(parsed.release)

    if parsed.pr is None:

        def build_release(out: Path, log_path: Path) -> None:
            gobin = Path(tempfile.mkdtemp(prefix=".gobin-", dir=out.parent))
            try:
                args = [go_binary(), "install", "-v", "-trimpath", f"{OPERATOR_MODULE}@{parsed.release}"]
                run_go(
                    args,
                    cwd=neutral_cwd(),
                    env=build_env(GOBIN=str(gobin)),
                    log_path=log_path,
                    what=f"ray-operator {parsed.label}",
                )
                os.replace(gobin / OPERATOR_BINARY, out)
            finally:
                shutil.rmtree(gobin, ignore_errors=True)

        return build_binary(f"ray-operator {parsed.label}", dest, build_release, {"version": parsed.label})

    patch = KNOWN_PATCHES[parsed.pr]
    patched_source = patch.apply((module_dir / patch.path).read_text())  # fails loudly before building

    def build_patched(out: Path, log_path: Path) -> None:
        work = Path(tempfile.mkdtemp(prefix=f"ray-operator-{parsed.label}-", dir=neutral_cwd()))
        try:
            tree = work / "ray-operator"
            shutil.copytree(module_dir, tree, symlinks=True)
            _make_writable(tree)
            (tree / patch.path).write_text(patched_source)
            log.info("applied PR %d to %s %s: %s", patch.pr, parsed.release, patch.path, patch.summary)
            args = [go_binary(), "build", "-v", "-trimpath", "-mod=readonly", "-o", str(out), "."]
            run_go(args, cwd=tree, env=build_env(), log_path=log_path, what=f"ray-operator {parsed.label}")
        finally:
            _make_writable(work)
            shutil.rmtree(work, ignore_errors=True)

    return build_binary(
        f"ray-operator {parsed.label}",
        dest,
        build_patched,
        {"version": parsed.label, "patch": f"PR {patch.pr}: {patch.summary}"},
    )


def operator_config_dir(version: str, source: Path | None = None) -> Path:
    """``ray-operator/config`` (the release's own manifests) of a release, a patched release, or a checkout."""
    if source is not None:
        path = resolve_operator_source(source) / "config"
    else:
        path = operator_module_dir(parse_operator_version(version).release) / "config"
    if not (path / "default").is_dir():
        raise ToolchainError(f"{path} has no default/ kustomization: not a KubeRay ray-operator/config directory.")
    return path
