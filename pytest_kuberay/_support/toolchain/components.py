"""Control-plane, node and install binaries built with Go from their pinned module (``ensure_component``)."""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

from pytest_kuberay._support.cache import cache_root
from pytest_kuberay._support.toolchain.binaries import build_binary
from pytest_kuberay._support.toolchain.go import build_env, check_go_version, go_binary, module_info, run_go
from pytest_kuberay._support.toolchain.recipes import (
    KUBE_MODULE,
    Component,
    component,
    component_version,
    go_directive,
    go_module_dir,
)
from pytest_kuberay.errors import ToolchainError


def _kube_ldflags(version: str) -> list[str]:
    """Version ldflags as hack/lib/version.sh sets them, so /version and --version are right."""
    match = re.match(r"v(\d+)\.(\d+)", version)
    major, minor = (match.group(1), match.group(2)) if match else ("", "")
    info = module_info(KUBE_MODULE, version)
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
    if comp.version_module == KUBE_MODULE:
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
    comp = component(name)
    version = component_version(name)
    dest = cache_root() / "bin" / comp.cache_dir_name / version / comp.file_name
    if dest.is_file():
        return dest
    module_dir = go_module_dir(comp.module_dir)
    check_go_version(go_directive((module_dir / "go.mod").read_text()), f"{name} {version}")

    def build(out: Path, log_path: Path) -> None:
        env = build_env()
        args = [
            go_binary(),
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
        run_go(args, cwd=module_dir, env=env, log_path=log_path, what=f"{name} {version}")

    return build_binary(f"{name} {version}", dest, build, {"component": name, "version": version})


def kubernetes_source_dir() -> Path:
    """The pinned k8s.io/kubernetes module in the Go module cache (for files that are not Go, e.g. pause.c)."""
    version = component_version("kubelet")
    info = module_info(KUBE_MODULE, version)
    if "Error" in info or not info.get("Dir"):
        raise ToolchainError(f"{KUBE_MODULE}@{version} is not available from the Go module proxy: {info.get('Error')}")
    return Path(str(info["Dir"]))
