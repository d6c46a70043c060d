"""The ``helm`` CLI pointed at one cluster: pull a chart once into the cache, install, uninstall, ask.

Chart-agnostic plumbing shared by the KubeRay chart (:mod:`.helm`) and Traefik's (:mod:`.traefik_helm`).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from pytest_kuberay._support.processes import run_tool
from pytest_kuberay._support.toolchain import cache_root
from pytest_kuberay.errors import ProviderError

__all__ = ["HELM_MISSING", "Helm", "helm_binary"]

log = logging.getLogger(__name__)

HELM_MISSING = (
    "helm not found on PATH: install Helm 3 (https://helm.sh/docs/intro/install/); the kind provider installs "
    "KubeRay and Traefik with it (--kuberay-source runs the operator without Helm)"
)


def helm_binary() -> str:
    helm = shutil.which("helm")
    if helm is None:
        raise ProviderError(HELM_MISSING)
    return helm


class Helm:
    """The ``helm`` CLI pointed at one cluster; every failure says which command failed and why."""

    def __init__(self, kubeconfig: Path, context: str | None = None, binary: str | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.context = context
        self.binary = binary or helm_binary()

    def _base(self) -> list[str]:
        argv = [self.binary, "--kubeconfig", str(self.kubeconfig)]
        return argv + (["--kube-context", self.context] if self.context else [])

    def run(self, *args: str, timeout: float = 600.0) -> str:
        argv = [*self._base(), *args]
        log.info("$ helm %s", " ".join(args))
        return run_tool(argv, f"helm {' '.join(args)}", timeout)

    def pull(self, chart: str, repo: str, version: str) -> Path:
        """The chart directory of ``chart`` at ``version``, pulled once into the cache."""
        dest = cache_root() / "charts" / f"{chart}-{version}"
        chart_dir = dest / chart
        if (chart_dir / "Chart.yaml").is_file():
            return chart_dir
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
            self.run("pull", chart, "--repo", repo, "--version", version, "--untar", "--untardir", tmp)
            if not (Path(tmp) / chart / "Chart.yaml").is_file():
                raise ProviderError(f"helm pull {chart} {version} from {repo} left no {chart}/Chart.yaml")
            with contextlib.suppress(FileExistsError, OSError):
                Path(tmp).rename(dest)  # another process may have won the race: theirs is as good
        return chart_dir

    def upgrade_install(self, release: str, chart_dir: Path, namespace: str, values: dict[str, Any],
                        timeout: float = 300.0) -> None:
        """``helm upgrade --install --wait``; CRDs are ours to apply, never Helm's."""
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix=f"{release}-values-") as handle:
            yaml.safe_dump(values, handle, sort_keys=False)
            handle.flush()
            self.run("upgrade", "--install", release, str(chart_dir), "--namespace", namespace,
                     "--values", handle.name, "--skip-crds", "--wait", "--timeout", f"{int(timeout)}s",
                     timeout=timeout + 60)

    def uninstall(self, release: str, namespace: str, timeout: float = 300.0) -> None:
        self.run("uninstall", release, "--namespace", namespace, "--wait", "--timeout", f"{int(timeout)}s",
                 timeout=timeout + 60)

    def release_exists(self, release: str, namespace: str) -> bool:
        try:
            self.run("status", release, "--namespace", namespace, timeout=60)
        except ProviderError:
            return False
        return True
