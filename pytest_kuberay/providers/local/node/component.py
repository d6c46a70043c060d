"""What every node process shares: it writes its config file, runs in the node's namespaces, and stops by PID."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pytest_kuberay._support.processes import ManagedProcess, ProcessFactory, http_ok, wait_until
from pytest_kuberay.providers.local.node.namespaces import NodeNamespaces

__all__ = ["NodeComponent"]


class NodeComponent:
    """One process of the node (kube-proxy, CoreDNS, ...), launched in the node's network namespace."""

    name = "component"
    stop_grace = 5.0

    def __init__(self, binary: Path, root: Path, namespaces: NodeNamespaces, spawn: ProcessFactory) -> None:
        self.binary = binary
        self.root = root
        self.namespaces = namespaces
        self.spawn = spawn
        self.process: ManagedProcess | None = None

    @property
    def log_path(self) -> Path:
        return self.root / f"{self.name}.log"

    def _launch(self, config_name: str, config_text: str, args: Sequence[str], *, mount_namespace: bool = False,
                env: dict[str, str] | None = None) -> ManagedProcess:
        """Write ``config_name`` under the root, then start the binary with ``args`` (``{config}`` is its path)."""
        self.root.mkdir(parents=True, exist_ok=True)
        config_path = self.root / config_name
        config_path.write_text(config_text)
        argv = [str(self.binary), *(a.replace("{config}", str(config_path)) for a in args)]
        wrapped = self.namespaces.wrap(argv) if mount_namespace else self.namespaces.wrap_net(argv)
        self.process = self.spawn(self.name, wrapped, self.log_path, env).start()
        return self.process

    def _wait_http_ok(self, url: str, what: str, timeout: float) -> None:
        assert self.process is not None, f"{self.name} was not started"
        wait_until(lambda: http_ok(url), timeout=timeout, what=what, processes=[self.process])

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(grace=self.stop_grace)
            self.process = None
