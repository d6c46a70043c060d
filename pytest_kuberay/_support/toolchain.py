"""Build the local provider's binaries from Go modules, with no Docker and no release downloads.

The local provider runs a real control plane (etcd, kube-apiserver, kube-controller-manager,
optionally kube-scheduler), Traefik as the Gateway API controller, and the real KubeRay
operator as plain processes. Every one of them is built here from source through the Go
module proxy, because that is the one channel that is always reachable where the tests run.

* Components are pinned by the per-component go.mod files in the repo's ``toolchain/``
  directory (one module each, so their dependency versions never mix).
* Operators are built from the ``github.com/ray-project/kuberay/ray-operator`` module at a
  release tag, at a release tag with a known upstream fix applied (``v1.5.0+pr4212``), or
  from a local checkout.

Binaries land in ``cache_root()/bin/<name>/<version>/`` next to their kept build log and are
reused on later runs. A per-binary lock file lets several pytest-xdist workers ask for the same
binary at once: one builds, the others wait and reuse it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from filelock import FileLock, Timeout

from pytest_kuberay._support.cache import cache_root
from pytest_kuberay.data_paths import data_dir
from pytest_kuberay.errors import ToolchainError

__all__ = [
    "COMPONENTS",
    "CONTROL_PLANE_COMPONENTS",
    "INSTALL_COMPONENTS",
    "KNOWN_PATCHES",
    "MIN_GO",
    "NODE_COMPONENTS",
    "OPERATOR_BINARY",
    "OPERATOR_MODULE",
    "SERVED_OPERATOR_RELEASES",
    "OperatorVersion",
    "build_record_path",
    "cache_root",
    "component_version",
    "crd_dir",
    "ensure_component",
    "ensure_operator",
    "kubernetes_source_dir",
    "main",
    "operator_config_dir",
    "parse_operator_version",
    "patch_pr4212",
    "source_tree_hash",
    "toolchain_dir",
]

log = logging.getLogger(__name__)

#: A build step: (temporary output path, build log path) -> None; raises ToolchainError on failure.
BuildFn = Callable[[Path, Path], None]

#: Oldest Go that builds every module here (traefik v3.6, etcd v3.6.14 and ray-operator v1.6 say ``go 1.25``).
MIN_GO = "1.25"

OPERATOR_MODULE = "github.com/ray-project/kuberay/ray-operator"
#: Name ``go install`` gives the operator binary (the module's last path element).
OPERATOR_BINARY = "ray-operator"

#: Operator releases the Go module proxy served and that built here with Go 1.26 (see toolchain/VERSIONS.md).
#: v1.5.2 and v1.7.0 are refused by the proxy; other versions are still tried when asked for.
SERVED_OPERATOR_RELEASES: tuple[str, ...] = ("v1.5.0", "v1.5.1", "v1.6.0", "v1.6.1", "v1.6.2")

GATEWAY_API_MODULE = "sigs.k8s.io/gateway-api"


@dataclass(frozen=True)
class Component:
    """A binary built from one of the repo's ``toolchain/<module_dir>/go.mod`` modules."""

    name: str
    module_dir: str
    package: str
    #: The required module whose version names the binary (e.g. k8s.io/kubernetes v1.34.4).
    version_module: str
    #: Arguments that print the version, for sanity checks.
    version_args: tuple[str, ...] = ("--version",)
    extra_ldflags: tuple[str, ...] = field(default=())
    #: Go build tags (containerd: leave out snapshotters that need cgo or kernel features we do not use).
    tags: tuple[str, ...] = field(default=())
    #: Binaries that must sit in one directory (CNI plugins: containerd's ``bin_dirs``) share this name.
    group: str | None = None
    #: The binary's file name when it differs from the component name.
    binary: str | None = None

    @property
    def cache_dir_name(self) -> str:
        """Directory under ``bin/`` that holds this binary's versions."""
        return self.group or self.name

    @property
    def file_name(self) -> str:
        return self.binary or self.name


_KUBE = "k8s.io/kubernetes"
_CONTAINERD = "github.com/containerd/containerd/v2"
#: Snapshotters we never use that would need cgo or extra kernel modules (as containerd's own static builds).
_CONTAINERD_TAGS = ("no_btrfs", "no_devmapper", "no_zfs", "no_aufs")
_CNI = "github.com/containernetworking/plugins"

COMPONENTS: dict[str, Component] = {
    "etcd": Component("etcd", "etcd", "go.etcd.io/etcd/server/v3", "go.etcd.io/etcd/server/v3"),
    "kube-apiserver": Component("kube-apiserver", "kubernetes", f"{_KUBE}/cmd/kube-apiserver", _KUBE),
    "kube-controller-manager": Component(
        "kube-controller-manager", "kubernetes", f"{_KUBE}/cmd/kube-controller-manager", _KUBE
    ),
    "kube-scheduler": Component("kube-scheduler", "kubernetes", f"{_KUBE}/cmd/kube-scheduler", _KUBE),
    "traefik": Component(
        "traefik",
        "traefik",
        "github.com/traefik/traefik/v3/cmd/traefik",
        "github.com/traefik/traefik/v3",
        version_args=("version",),
    ),
    # The real node: kubelet and kube-proxy from the same Kubernetes module as the control plane.
    "kubelet": Component("kubelet", "kubernetes", f"{_KUBE}/cmd/kubelet", _KUBE),
    "kube-proxy": Component("kube-proxy", "kubernetes", f"{_KUBE}/cmd/kube-proxy", _KUBE),
    **{
        name: Component(
            name,
            "containerd",
            f"{_CONTAINERD}/cmd/{name}",
            _CONTAINERD,
            version_args=("--version",) if name != "ctr" else ("version",),
            extra_ldflags=(f"-X {_CONTAINERD}/version.Version={{version}}",),
            tags=_CONTAINERD_TAGS,
            group="containerd",
        )
        for name in ("containerd", "containerd-shim-runc-v2", "ctr")
    },
    **{
        name: Component(
            name,
            "cni-plugins",
            f"{_CNI}/plugins/{kind}/{name}",
            _CNI,
            version_args=(),
            group="cni-plugins",
        )
        for kind, name in (("main", "bridge"), ("ipam", "host-local"), ("meta", "portmap"), ("main", "loopback"))
    },
    "coredns": Component("coredns", "coredns", "github.com/coredns/coredns", "github.com/coredns/coredns",
                         version_args=("-version",)),
    # Renders the operator's release manifests (ray-operator/config/default) for an in-cluster install.
    "kustomize": Component("kustomize", "kustomize", "sigs.k8s.io/kustomize/kustomize/v5",
                           "sigs.k8s.io/kustomize/kustomize/v5", version_args=("version",),
                           extra_ldflags=("-X sigs.k8s.io/kustomize/api/provenance.version={version}",)),
}

#: Components of the control plane and gateway, and of the real node (``make toolchain`` builds all).
CONTROL_PLANE_COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "traefik")
NODE_COMPONENTS = ("kubelet", "kube-proxy", "containerd", "containerd-shim-runc-v2", "ctr",
                   "bridge", "host-local", "portmap", "loopback", "coredns")
#: Tools for installing into a cluster.
INSTALL_COMPONENTS = ("kustomize",)


# --------------------------------------------------------------------------------------------
# Paths and versions (pure)
# --------------------------------------------------------------------------------------------


def toolchain_dir() -> Path:
    """The repo's ``toolchain/`` directory holding one go.mod per component.

    ``$PYTEST_KUBERAY_TOOLCHAIN`` overrides it, for an installed package that is not run from a checkout.
    """
    explicit = os.environ.get("PYTEST_KUBERAY_TOOLCHAIN")
    if explicit:
        return Path(explicit).expanduser()
    return data_dir("toolchain")


def _module_dir(subdir: str) -> Path:
    path = toolchain_dir() / subdir
    if not (path / "go.mod").is_file():
        raise ToolchainError(
            f"{path / 'go.mod'} not found: run from a pytest-kuberay checkout, "
            "or set PYTEST_KUBERAY_TOOLCHAIN to its toolchain/ directory."
        )
    return path


def required_version(go_mod_text: str, module: str) -> str | None:
    """The version a go.mod requires of ``module`` (single-line or block ``require``), or None."""
    pattern = rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v[^\s/]+)"
    match = re.search(pattern, go_mod_text, re.MULTILINE)
    return match.group(1) if match else None


def go_directive(go_mod_text: str) -> str | None:
    """The ``go 1.x`` line of a go.mod, which is the oldest Go that builds it."""
    match = re.search(r"^go\s+(\d+\.\d+(?:\.\d+)?)\s*$", go_mod_text, re.MULTILINE)
    return match.group(1) if match else None


def component_version(name: str) -> str:
    """The version of a component, as pinned by its go.mod (it names the cache directory)."""
    comp = _component(name)
    text = (_module_dir(comp.module_dir) / "go.mod").read_text()
    version = required_version(text, comp.version_module)
    if version is None:
        raise ToolchainError(f"toolchain/{comp.module_dir}/go.mod does not require {comp.version_module}.")
    return version


def _component(name: str) -> Component:
    try:
        return COMPONENTS[name]
    except KeyError:
        raise ToolchainError(f"unknown component {name!r}; known: {', '.join(COMPONENTS)}.") from None


_OPERATOR_VERSION = re.compile(r"^(v\d+\.\d+\.\d+)(?:\+pr(\d+))?$")


@dataclass(frozen=True)
class OperatorVersion:
    """An operator version label: a release tag, optionally with one known upstream PR applied."""

    release: str
    pr: int | None = None

    @property
    def label(self) -> str:
        """The full version string, used as the cache directory name."""
        return self.release if self.pr is None else f"{self.release}+pr{self.pr}"

    def __str__(self) -> str:
        return self.label


def parse_operator_version(version: str) -> OperatorVersion:
    """Parse ``v1.5.0`` or ``v1.5.0+pr4212``; anything else is a user error with the accepted forms."""
    match = _OPERATOR_VERSION.match(version.strip())
    if not match:
        raise ToolchainError(
            f"operator version {version!r} is not of the form vX.Y.Z or vX.Y.Z+prNNNN; "
            f"releases served by the Go proxy: {', '.join(SERVED_OPERATOR_RELEASES)}; "
            f"patched builds: {', '.join(f'v1.5.0+pr{n}' for n in KNOWN_PATCHES)}."
        )
    release, pr = match.group(1), match.group(2)
    if pr is not None and int(pr) not in KNOWN_PATCHES:
        raise ToolchainError(
            f"no build step is known for upstream PR {pr} (in {version!r}); known PRs: "
            f"{', '.join(str(n) for n in KNOWN_PATCHES)}."
        )
    return OperatorVersion(release, int(pr) if pr is not None else None)


def _go_version_tuple(text: str) -> tuple[int, ...]:
    """``go1.26.8`` / ``1.25.0`` / ``1.25`` -> (1, 26, 8) etc.; pre-release suffixes are ignored."""
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not match:
        return (0,)
    return tuple(int(part) for part in match.groups(default="0"))


# --------------------------------------------------------------------------------------------
# The PR 4212 build step (pure)
# --------------------------------------------------------------------------------------------

_APPLY_TC_FUNC = re.compile(r"^func \(r \*RayServiceReconciler\) applyServeTargetCapacity\(", re.MULTILINE)
_CACHE_CALL = re.compile(r"^[ \t]*r\.cacheServeConfig\([^\n]*\)[ \t]*\n", re.MULTILINE)


def patch_pr4212(source: str) -> str:
    """Apply upstream PR 4212 (the fix for bug 4189, released in v1.5.1) to rayservice_controller.go.

    v1.5.0's ``applyServeTargetCapacity`` ends with ``r.cacheServeConfig(...)``, which caches the
    *spec* (new) Serve config under the active cluster's name at its first step-down, so its next
    step-down sends the new config. The fix removes that one call. We refuse to guess: the call
    must occur exactly once inside the function, or the build fails.
    """
    start = _APPLY_TC_FUNC.search(source)
    if start is None:
        raise ToolchainError(
            "PR 4212 build step: func (r *RayServiceReconciler) applyServeTargetCapacity not found "
            "in rayservice_controller.go; this source is not the one the patch was written for."
        )
    end = source.find("\n}\n", start.end())
    if end < 0:
        raise ToolchainError("PR 4212 build step: cannot find the end of applyServeTargetCapacity.")
    end += 1  # keep the function's closing brace line intact
    body = source[start.start() : end]
    calls = list(_CACHE_CALL.finditer(body))
    if len(calls) != 1:
        raise ToolchainError(
            f"PR 4212 build step: expected exactly one r.cacheServeConfig(...) call in "
            f"applyServeTargetCapacity, found {len(calls)}; this source is not the one the patch was "
            "written for (the fix may already be in it)."
        )
    call = calls[0]
    patched_body = body[: call.start()] + body[call.end() :]
    return source[: start.start()] + patched_body + source[end:]


@dataclass(frozen=True)
class SourcePatch:
    """A build step that applies one upstream PR to a release's module source."""

    pr: int
    path: str
    apply: Callable[[str], str]
    summary: str


KNOWN_PATCHES: dict[int, SourcePatch] = {
    4212: SourcePatch(
        4212,
        "controllers/ray/rayservice_controller.go",
        patch_pr4212,
        "do not cache the spec Serve config in applyServeTargetCapacity (fixes bug 4189)",
    ),
}


# --------------------------------------------------------------------------------------------
# Running Go
# --------------------------------------------------------------------------------------------


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise ToolchainError(
            f"`go` is not on PATH. The local provider builds etcd, Kubernetes, Traefik and the KubeRay "
            f"operator from source: install Go >= {MIN_GO} (https://go.dev/dl/) and put its bin/ on PATH, "
            "or use another provider (e.g. --kuberay-provider=kind)."
        )
    return go


def _go_env(*names: str) -> dict[str, str]:
    """Values from ``go env`` (merges the environment with Go's own env file)."""
    proc = subprocess.run([_go(), "env", "-json", *names], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ToolchainError(f"`go env` failed: {proc.stderr.strip()}")
    values: dict[str, str] = json.loads(proc.stdout or "{}")
    return values


def _build_env(**extra: str) -> dict[str, str]:
    """Environment for every go command here.

    -buildvcs=false: module-cache and copied sources have no VCS data. CGO off: static binaries,
    no C toolchain needed. GOWORK off: a go.work around the checkout must not change the pins.
    """
    env = dict(os.environ)
    goflags = _go_env("GOFLAGS").get("GOFLAGS", "").split()
    if not any(flag.startswith("-buildvcs") for flag in goflags):
        goflags.append("-buildvcs=false")
    env["GOFLAGS"] = " ".join(goflags)
    env["CGO_ENABLED"] = "0"
    env["GOWORK"] = "off"
    env.update(extra)
    return env


def _check_go_version(required: str | None, what: str) -> None:
    """Fail early with a readable message instead of Go's 'go.mod requires go >= ...'."""
    if not required:
        return
    info = _go_env("GOVERSION", "GOTOOLCHAIN")
    have = info.get("GOVERSION", "")
    if info.get("GOTOOLCHAIN", "local") != "local":
        return  # Go downloads the toolchain the go.mod asks for by itself
    if _go_version_tuple(have) < _go_version_tuple(required):
        raise ToolchainError(
            f"building {what} needs Go >= {required}, but `go` on PATH is {have}: install a newer Go "
            "(https://go.dev/dl/) or set GOTOOLCHAIN=auto so Go fetches it."
        )


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """An exclusive file lock (filelock), so concurrent pytest-xdist workers build a binary only once."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path))
    waited = time.monotonic()
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another process building %s", lock_path.stem)
        lock.acquire()
        log.info("lock %s acquired after %.0fs", lock_path.name, time.monotonic() - waited)
    try:
        yield
    finally:
        lock.release()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        content = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(content[-lines:])


def _fmt_seconds(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _run_go(args: Sequence[str], *, cwd: Path, env: dict[str, str], log_path: Path, what: str) -> None:
    """Run a ``go build -v``-style command, keep its whole output in ``log_path``, show a package count.

    Raises ToolchainError pointing at the log (with its tail) when the command fails.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    interactive = sys.stderr.isatty()
    compiled = downloaded = 0
    last_report = started
    with open(log_path, "w") as out:
        out.write(f"$ cd {cwd} && {' '.join(args)}\n")
        out.flush()
        proc = subprocess.Popen(
            list(args),
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            stripped = line.strip()
            if stripped.startswith("go: downloading"):
                downloaded += 1
            elif stripped and " " not in stripped and not stripped.startswith("#"):
                compiled += 1  # `go build -v` prints one import path per package it compiles
            now = time.monotonic()
            if interactive and now - last_report >= 1:
                print(
                    f"\r  {what}: {compiled} packages compiled, {_fmt_seconds(now - started)}",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
                last_report = now
            elif not interactive and now - last_report >= 60:
                _stderr(f"  {what}: {compiled} packages compiled, {_fmt_seconds(now - started)}")
                last_report = now
        rc = proc.wait()
        out.write(f"# exit {rc} after {time.monotonic() - started:.1f}s\n")
    if interactive:
        print(file=sys.stderr)
    log.debug("%s: %d packages compiled, %d modules downloaded", what, compiled, downloaded)
    if rc != 0:
        raise ToolchainError(
            f"building {what} failed (go exit status {rc}). Full build log: {log_path}\nLast lines:\n{_tail(log_path)}"
        )


def build_record_path(binary: Path, suffix: str = "json") -> Path:
    """``build.json``/``build.log`` beside a binary; ``<name>.build.json`` where binaries share a directory."""
    shared = binary.parent.parent.name != binary.name
    return binary.parent / (f"{binary.name}.build.{suffix}" if shared else f"build.{suffix}")


def _install(built: Path, dest: Path, meta: dict[str, object]) -> None:
    """Move a finished binary into place atomically and record how it was built."""
    built.chmod(built.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    build_record_path(dest).write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(built, dest)  # last: an existing dest always means a complete build


def _build_binary(what: str, dest: Path, build: BuildFn, extra_meta: dict[str, object] | None = None) -> Path:
    """Reuse ``dest`` or build it under its lock: build to a temp path, then rename over ``dest``."""
    if dest.is_file():
        return dest
    lock = cache_root() / "locks" / f"{dest.parent.parent.name}@{dest.parent.name}.lock"
    with _locked(lock):
        if dest.is_file():  # another worker finished it while we waited
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        log_path = build_record_path(dest, "log")
        _stderr(
            f"pytest-kuberay: building {what} from source with Go (the first build takes minutes; "
            f"later runs reuse it). Log: {log_path}"
        )
        started = time.monotonic()
        tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}"
        try:
            build(tmp, log_path)
            if not tmp.is_file():
                raise ToolchainError(f"building {what} produced no binary; see {log_path}")
            seconds = time.monotonic() - started
            meta: dict[str, object] = {
                "what": what,
                "build_seconds": round(seconds, 1),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "go": _go_env("GOVERSION").get("GOVERSION", ""),
                **(extra_meta or {}),
            }
            _install(tmp, dest, meta)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        _stderr(f"pytest-kuberay: built {what} in {_fmt_seconds(seconds)}: {dest}")
        log.debug("built %s in %.0fs: %s", what, seconds, dest)
        return dest


# --------------------------------------------------------------------------------------------
# Components
# --------------------------------------------------------------------------------------------


def _module_info(module: str, version: str, *, env: dict[str, str] | None = None) -> dict[str, object]:
    """``go mod download -json module@version``: puts it in the module cache and says where (Dir)."""
    proc = subprocess.run(
        [_go(), "mod", "download", "-json", f"{module}@{version}"],
        cwd=_neutral_cwd(),
        env=env or _build_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        info: dict[str, object] = json.loads(proc.stdout)
    except json.JSONDecodeError:
        info = {"Error": (proc.stderr or proc.stdout).strip() or f"exit status {proc.returncode}"}
    if proc.returncode != 0 and "Error" not in info:
        info["Error"] = proc.stderr.strip() or f"exit status {proc.returncode}"
    return info


def _neutral_cwd() -> Path:
    """A directory outside any Go module, so ``go mod download m@v`` and ``go install m@v`` act globally."""
    path = cache_root() / "work"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _kube_ldflags(version: str) -> list[str]:
    """Version ldflags as hack/lib/version.sh sets them, so /version and --version are right."""
    match = re.match(r"v(\d+)\.(\d+)", version)
    major, minor = (match.group(1), match.group(2)) if match else ("", "")
    info = _module_info(_KUBE, version)
    commit = ""
    origin = info.get("Origin")
    if isinstance(origin, dict):
        commit = str(origin.get("Hash", ""))
    build_date = "1970-01-01T00:00:00Z"
    info_file = info.get("Info")
    if isinstance(info_file, str) and os.path.isfile(info_file):
        with contextlib.suppress(ValueError, OSError):
            build_date = json.loads(Path(info_file).read_text()).get("Time", build_date)
    values = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitCommit": commit,
        "gitTreeState": "clean",
        "buildDate": build_date,
    }
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {pkg}.{key}={value}" for key, value in values.items() if value]
    return flags


def _ldflags(comp: Component, version: str) -> str:
    flags = ["-s", "-w"]
    if comp.version_module == _KUBE:
        flags += _kube_ldflags(version)
    elif comp.name == "traefik":
        flags += [f"-X github.com/traefik/traefik/v3/pkg/version.Version={version.lstrip('v')}"]
    flags += [flag.format(version=version) for flag in comp.extra_ldflags]
    return " ".join(flags)


def ensure_component(name: str) -> Path:
    """Path to a control-plane / gateway binary, building it on first use.

    ``name`` is one of etcd, kube-apiserver, kube-controller-manager, kube-scheduler, traefik.
    The version comes from the repo's toolchain/<dir>/go.mod, so bumping a pin rebuilds.
    """
    comp = _component(name)
    version = component_version(name)
    dest = cache_root() / "bin" / comp.cache_dir_name / version / comp.file_name
    if dest.is_file():
        return dest
    module_dir = _module_dir(comp.module_dir)
    _check_go_version(go_directive((module_dir / "go.mod").read_text()), f"{name} {version}")

    def build(out: Path, log_path: Path) -> None:
        env = _build_env()
        args = [
            _go(),
            "build",
            "-v",
            "-trimpath",
            "-mod=readonly",
            *(["-tags", ",".join(comp.tags)] if comp.tags else []),
            "-ldflags",
            _ldflags(comp, version),
            "-o",
            str(out),
            comp.package,
        ]
        _run_go(args, cwd=module_dir, env=env, log_path=log_path, what=f"{name} {version}")

    return _build_binary(f"{name} {version}", dest, build, {"component": name, "version": version})


def kubernetes_source_dir() -> Path:
    """The pinned k8s.io/kubernetes module in the Go module cache (for files that are not Go, e.g. pause.c)."""
    version = component_version("kubelet")
    info = _module_info(_KUBE, version)
    if "Error" in info or not info.get("Dir"):
        raise ToolchainError(f"{_KUBE}@{version} is not available from the Go module proxy: {info.get('Error')}")
    return Path(str(info["Dir"]))


# --------------------------------------------------------------------------------------------
# Operator
# --------------------------------------------------------------------------------------------


def _operator_module_dir(release: str) -> Path:
    """Download a ray-operator release into the module cache, or explain which releases are served."""
    info = _module_info(OPERATOR_MODULE, release)
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


def _resolve_operator_source(source: Path) -> Path:
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
        op_dir = _resolve_operator_source(source)
        label = f"{_sanitize_label(version)}-src-{source_tree_hash(op_dir)[:12]}"
        dest = bin_root / label / OPERATOR_BINARY
        if dest.is_file():
            return dest

        def build_source(out: Path, log_path: Path) -> None:
            args = [_go(), "build", "-v", "-trimpath", "-mod=readonly", "-o", str(out), "."]
            _run_go(args, cwd=op_dir, env=_build_env(), log_path=log_path, what=f"ray-operator {label}")

        return _build_binary(f"ray-operator {label}", dest, build_source, {"version": version, "source": str(op_dir)})

    parsed = parse_operator_version(version)
    dest = bin_root / parsed.label / OPERATOR_BINARY
    if dest.is_file():
        return dest
    # Before announcing a build: a readable error when the proxy refuses the release.
    module_dir = _operator_module_dir(parsed.release)

    if parsed.pr is None:

        def build_release(out: Path, log_path: Path) -> None:
            gobin = Path(tempfile.mkdtemp(prefix=".gobin-", dir=out.parent))
            try:
                args = [_go(), "install", "-v", "-trimpath", f"{OPERATOR_MODULE}@{parsed.release}"]
                _run_go(
                    args,
                    cwd=_neutral_cwd(),
                    env=_build_env(GOBIN=str(gobin)),
                    log_path=log_path,
                    what=f"ray-operator {parsed.label}",
                )
                os.replace(gobin / OPERATOR_BINARY, out)
            finally:
                shutil.rmtree(gobin, ignore_errors=True)

        return _build_binary(f"ray-operator {parsed.label}", dest, build_release, {"version": parsed.label})

    patch = KNOWN_PATCHES[parsed.pr]
    patched_source = patch.apply((module_dir / patch.path).read_text())  # fails loudly before building

    def build_patched(out: Path, log_path: Path) -> None:
        work = Path(tempfile.mkdtemp(prefix=f"ray-operator-{parsed.label}-", dir=_neutral_cwd()))
        try:
            tree = work / "ray-operator"
            shutil.copytree(module_dir, tree, symlinks=True)
            _make_writable(tree)
            (tree / patch.path).write_text(patched_source)
            log.info("applied PR %d to %s %s: %s", patch.pr, parsed.release, patch.path, patch.summary)
            args = [_go(), "build", "-v", "-trimpath", "-mod=readonly", "-o", str(out), "."]
            _run_go(args, cwd=tree, env=_build_env(), log_path=log_path, what=f"ray-operator {parsed.label}")
        finally:
            _make_writable(work)
            shutil.rmtree(work, ignore_errors=True)

    return _build_binary(
        f"ray-operator {parsed.label}",
        dest,
        build_patched,
        {"version": parsed.label, "patch": f"PR {patch.pr}: {patch.summary}"},
    )


def operator_config_dir(version: str, source: Path | None = None) -> Path:
    """``ray-operator/config`` (the release's own manifests) of a release, a patched release, or a checkout."""
    if source is not None:
        path = _resolve_operator_source(source) / "config"
    else:
        path = _operator_module_dir(parse_operator_version(version).release) / "config"
    if not (path / "default").is_dir():
        raise ToolchainError(f"{path} has no default/ kustomization: not a KubeRay ray-operator/config directory.")
    return path


# --------------------------------------------------------------------------------------------
# CRDs
# --------------------------------------------------------------------------------------------


def crd_dir(kind: str, version: str | None = None) -> Path:
    """Directory of CRD YAMLs to apply, taken from the Go module cache (downloaded when missing).

    * ``kind="kuberay"``: ray-operator@<release>/config/crd/bases (for ``v1.5.0+pr4212``, v1.5.0's:
      the PR does not touch the API).
    * ``kind="gateway-api"``: sigs.k8s.io/gateway-api@<version>/config/crd/standard; ``version``
      defaults to the pin in toolchain/gateway-api/go.mod.
    """
    if kind == "kuberay":
        if not version:
            raise ToolchainError("crd_dir('kuberay', version) needs the operator version, e.g. 'v1.5.1'.")
        path = _operator_module_dir(parse_operator_version(version).release) / "config" / "crd" / "bases"
    elif kind in ("gateway-api", "gateway"):
        if not version:
            text = (_module_dir("gateway-api") / "go.mod").read_text()
            version = required_version(text, GATEWAY_API_MODULE)
            if version is None:
                raise ToolchainError(f"toolchain/gateway-api/go.mod does not require {GATEWAY_API_MODULE}.")
        info = _module_info(GATEWAY_API_MODULE, version)
        if "Error" in info or not info.get("Dir"):
            raise ToolchainError(
                f"Gateway API {version} is not available from the Go module proxy "
                f"({str(info.get('Error', '')).splitlines()[0] if info.get('Error') else 'no Dir'}); "
                "the pinned version is in toolchain/gateway-api/go.mod."
            )
        path = Path(str(info["Dir"])) / "config" / "crd" / "standard"
    else:
        raise ToolchainError(f"unknown CRD kind {kind!r}; use 'kuberay' or 'gateway-api'.")
    if not path.is_dir():
        raise ToolchainError(f"CRD directory {path} does not exist in the module.")
    return path


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _version_line(path: Path, args: Sequence[str]) -> str:
    """First line a binary prints for its version command (sanity check of the build)."""
    try:
        proc = subprocess.run([str(path), *args], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"<failed: {exc}>"
    text = (proc.stdout or proc.stderr).strip()
    return " | ".join(line.strip() for line in text.splitlines()[:3] if line.strip())


def _operator_version_line(path: Path) -> str:
    """The operator has no --version flag; ``go version -m`` shows the module version it was built from."""
    proc = subprocess.run([_go(), "version", "-m", str(path)], capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "mod":
            return f"{parts[1]} {parts[2]}"
    return proc.stdout.splitlines()[0] if proc.stdout else proc.stderr.strip()


def main(argv: Sequence[str] | None = None, prog: str = "python -m pytest_kuberay._support.toolchain") -> int:
    """Prebuild the local provider's binaries (``make toolchain``) and print where they are."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Build (or reuse) the binaries of the Docker-free local provider.",
    )
    parser.add_argument(
        "--kuberay-version",
        default="v1.5.0,v1.5.0+pr4212",
        help="comma-separated operator versions to build (default: %(default)s)",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help=f"also build every served release ({', '.join(SERVED_OPERATOR_RELEASES)})",
    )
    parser.add_argument(
        "--components",
        default=",".join(COMPONENTS),
        help="comma-separated components (default: %(default)s); empty for none",
    )
    parser.add_argument(
        "--operator-source",
        type=Path,
        default=None,
        help="also build the operator from this kuberay checkout (labelled 'dev')",
    )
    parser.add_argument("--check", action="store_true", help="run each binary's version command")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    components = [c.strip() for c in args.components.split(",") if c.strip()]
    versions = [v.strip() for v in args.kuberay_version.split(",") if v.strip()]
    if args.all:
        versions += [v for v in SERVED_OPERATOR_RELEASES if v not in versions]

    jobs: list[tuple[str, Callable[[], Path], Callable[[Path], str]]] = []
    for name in components:
        comp = _component(name)
        jobs.append((name, partial(ensure_component, name), partial(_version_line, args=comp.version_args)))
    for version in versions:
        build_op = partial(ensure_operator, version)
        jobs.append((f"kuberay-operator {version}", build_op, _operator_version_line))
    if args.operator_source is not None:
        jobs.append(
            (
                "kuberay-operator dev (source)",
                partial(ensure_operator, "dev", args.operator_source),
                _operator_version_line,
            )
        )

    failed = 0
    for what, ensure, check in jobs:
        started = time.monotonic()
        try:
            path = ensure()
        except ToolchainError as exc:
            failed += 1
            print(f"FAILED {what}: {exc}", file=sys.stderr)
            continue
        line = f"{what:32} {_fmt_seconds(time.monotonic() - started):>7}  {path}"
        if args.check:
            line += f"\n{'':41}{check(path)}"
        print(line, flush=True)
    for kind, version in [("gateway-api", None), *(("kuberay", v) for v in versions)]:
        try:
            print(f"CRDs {kind} {version or ''}".rstrip() + f": {crd_dir(kind, version)}")
        except ToolchainError as exc:
            failed += 1
            print(f"FAILED CRDs {kind} {version or ''}: {exc}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
