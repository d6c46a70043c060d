"""A real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, optional scheduler) as processes.

This is the no-Docker half of a local cluster: envtest's idea (real API server, real
etcd, generated PKI) plus the controller manager, because KubeRay and the API server's
service proxy need what it does: service-account tokens, ``kube-root-ca.crt``, Endpoints,
garbage collection. The API server listens on the run's bridge IP, not loopback, so that
pods on the bridge can reach it and its ``kubernetes`` Service endpoints are routable.

Everything lives under ``<run dir>/control-plane/``; each started process is recorded in
the run's ``state.json`` at once, so a crashed run can be reaped (see run_registry).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import secrets
import shutil
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from pytest_kuberay._support import toolchain
from pytest_kuberay._support.processes import ManagedProcess, Supervisor, free_port, wait_until
from pytest_kuberay.errors import ProviderError
from pytest_kuberay.providers.local.kubeconfig import write_kubeconfig
from pytest_kuberay.providers.local.network import LINK_PREFIX, NodeNetwork
from pytest_kuberay.providers.local.pki import (
    ADMIN_GROUP,
    ADMIN_USER,
    ClusterPKI,
    IssuedCert,
    generate_pki,
    issue_certificate,
)
from pytest_kuberay.providers.local.run_registry import RunRecord, marker_env, new_run, reap_stale_runs

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

__all__ = [
    "CONTROLLERS",
    "SERVICE_ACCOUNT_ISSUER",
    "SERVICE_CIDR",
    "LocalControlPlane",
    "run_control_plane",
]

log = logging.getLogger(__name__)

SERVICE_CIDR = "10.96.0.0/16"
#: First IP of SERVICE_CIDR: the ``kubernetes`` Service's ClusterIP, which must be in the serving cert.
KUBERNETES_SERVICE_IP = "10.96.0.1"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
#: Every default controller: the real kubelet renews its Lease and posts Ready, so node lifecycle works too.
CONTROLLERS = "*"
TOKEN_USER = "pytest-kuberay-token-admin"

_PORT_CONFLICT = "address already in use"
_PORT_RETRIES = 3


class LocalControlPlane:
    """etcd + kube-apiserver + kube-controller-manager (+ kube-scheduler) for one run, stopped by PID."""

    def __init__(
        self,
        run_dir: Path,
        network: NodeNetwork,
        *,
        scheduler: bool = True,
        keep_logs_in: Path | None = None,
        run: RunRecord | None = None,
        die_with_parent: bool = True,
    ) -> None:
        """``run`` records PIDs in ``run_dir/state.json`` (loaded from ``run_dir`` when omitted and present).

        ``die_with_parent=False`` lets the processes outlive a killed pytest; only tests of the
        reaper want that.
        """
        self.run_dir = run_dir
        self.network = network
        self.scheduler = scheduler
        self.keep_logs_in = keep_logs_in
        self.die_with_parent = die_with_parent
        if run is None and (run_dir / "state.json").is_file():
            run = RunRecord.load(run_dir)
        self._run = run
        self.dir = run_dir / "control-plane"
        self.pki = ClusterPKI.in_dir(self.dir / "pki")
        self.kubeconfig = self.dir / "admin.kubeconfig"
        self.log_dir = self.dir / "logs"
        self.ca_file = self.pki.ca_cert
        self.admin_token = ""
        self.kubelet_client: IssuedCert | None = None
        self.api_port: int | None = None
        self.etcd_url = ""
        self.kubernetes_version = ""
        self.start_seconds: float | None = None
        self._scheduler_port = 0
        self._supervisor = Supervisor(on_start=self._record)

    @classmethod
    def attach(cls, run: RunRecord) -> LocalControlPlane:
        """The control plane of a kept run, as started by another process (nothing is started here)."""
        name = run.state.network or ""
        if not name.startswith(LINK_PREFIX) or "api_url" not in run.state.endpoints:
            raise ProviderError(f"run {run.run_id} records no network or API server address: not a kept cluster")
        network = NodeNetwork(name, int(name[len(LINK_PREFIX):]))
        control_plane = cls(run.run_dir, network, run=run, die_with_parent=False)
        control_plane.api_port = int(run.state.endpoints["api_url"].rsplit(":", 1)[1])
        control_plane.kubernetes_version = toolchain.component_version("kube-apiserver")
        return control_plane

    # ---------------------------------------------------------------------------------- info

    @property
    def api_url(self) -> str:
        """``https://<bridge gateway IP>:<secure port>``, reachable from the host and from pods."""
        if self.api_port is None:
            raise RuntimeError("the control plane is not started")
        return f"https://{self.network.host_ip}:{self.api_port}"

    @property
    def log_paths(self) -> dict[str, Path]:
        """Log file per component, e.g. ``{"etcd": ..., "kube-apiserver": ...}``."""
        names = ["etcd", "kube-apiserver", "kube-controller-manager"] + (["kube-scheduler"] if self.scheduler else [])
        return {name: self.log_dir / f"{name}.log" for name in names}

    @property
    def run(self) -> RunRecord | None:
        """The run record that holds this control plane's PIDs (None when started without one)."""
        return self._run

    @property
    def processes(self) -> list[ManagedProcess]:
        """The running component processes, in start order."""
        return self._supervisor.processes

    def api_client(self) -> ApiClient:
        """A ``kubernetes.client.ApiClient`` authenticated with the admin client certificate; close it when done."""
        from kubernetes import config  # heavy import, only when a client is wanted

        client: ApiClient = config.new_client_from_config(config_file=str(self.kubeconfig))
        return client

    # --------------------------------------------------------------------------------- start

    def start(self, timeout: float = 120.0) -> LocalControlPlane:
        """Start every component and wait until the cluster is usable; tear down everything on failure.

        "Usable" means: /readyz is ok, the ``kubernetes`` Service has endpoints, and the
        ``default`` ServiceAccount and ``kube-root-ca.crt`` exist in ``default`` (so the
        controller manager's service-account and root-CA controllers run).
        """
        try:
            # Builds (minutes, first run only) happen before the clock starts: ``timeout`` is for starting.
            binaries = self._binaries()
            started = time.monotonic()
            self._start(binaries, started + timeout)
        except BaseException:
            log.info("control plane start failed; stopping what was started")
            with contextlib.suppress(Exception):
                self.stop()
            raise
        self.start_seconds = time.monotonic() - started
        log.info("control plane ready at %s in %.1fs", self.api_url, self.start_seconds)
        return self

    def _binaries(self) -> dict[str, Path]:
        """Each component's binary; a build already running elsewhere is waited for (toolchain's lock)."""
        return {name: toolchain.ensure_component(name) for name in self.log_paths}

    def _start(self, binaries: dict[str, Path], deadline: float) -> None:
        self.kubernetes_version = toolchain.component_version("kube-apiserver")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        generate_pki(self.pki.dir, apiserver_ips=[self.network.host_ip], service_ip=KUBERNETES_SERVICE_IP)
        # The API server's identity towards kubelets (logs, exec, port-forward): kubelet authorizes it by webhook.
        self.kubelet_client = issue_certificate(self.pki, "apiserver-kubelet-client",
                                                common_name="kube-apiserver-kubelet-client",
                                                organizations=[ADMIN_GROUP])
        self.admin_token = secrets.token_urlsafe(32)
        token_file = self.dir / "tokens.csv"
        token_file.touch(mode=0o600)
        token_file.write_text(f'{self.admin_token},{TOKEN_USER},{TOKEN_USER},"{ADMIN_GROUP}"\n')

        with httpx.Client(timeout=5.0) as plain:
            self._start_etcd(binaries["etcd"], plain, deadline)
        self._start_apiserver(binaries["kube-apiserver"], deadline)
        self._write_kubeconfig()
        with self._admin_http() as api:
            self._start_controller_manager(binaries["kube-controller-manager"], api, deadline)
            if self.scheduler:
                self._start_scheduler(binaries["kube-scheduler"], deadline)

    def _start_etcd(self, binary: Path, http: httpx.Client, deadline: float) -> None:
        data_dir = self.dir / "etcd"

        def argv() -> list[str]:
            client, peer = free_port("127.0.0.1"), free_port("127.0.0.1")
            self.etcd_url = f"http://127.0.0.1:{client}"
            peer_url = f"http://127.0.0.1:{peer}"
            return [
                str(binary),
                "--name=pytest-kuberay",
                f"--data-dir={data_dir}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=pytest-kuberay={peer_url}",
                "--unsafe-no-fsync",  # a throwaway cluster: durability buys nothing, fsync costs seconds
                "--log-level=warn",
            ]

        self._start_component(
            "etcd",
            argv,
            lambda: http.get(f"{self.etcd_url}/health").text.strip(),
            lambda body: '"health":"true"' in body,
            "etcd GET /health to report health true",
            deadline,
        )

    def _start_apiserver(self, binary: Path, deadline: float) -> None:
        gateway = self.network.host_ip
        pki = self.pki
        kubelet_client = self.kubelet_client
        assert kubelet_client is not None, "generated with the PKI in _start"

        def argv() -> list[str]:
            self.api_port = free_port(gateway)
            return [
                str(binary),
                f"--etcd-servers={self.etcd_url}",
                f"--advertise-address={gateway}",  # must not be loopback: it becomes the kubernetes endpoints
                f"--bind-address={gateway}",
                f"--secure-port={self.api_port}",
                f"--cert-dir={self.dir / 'apiserver-certs'}",  # unused with the TLS files; keeps /var/run clean
                f"--tls-cert-file={pki.apiserver_cert}",
                f"--tls-private-key-file={pki.apiserver_key}",
                f"--client-ca-file={pki.ca_cert}",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={pki.service_account_pub}",
                f"--service-account-signing-key-file={pki.service_account_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                f"--kubelet-certificate-authority={pki.ca_cert}",
                f"--kubelet-client-certificate={kubelet_client.cert}",
                f"--kubelet-client-key={kubelet_client.key}",
                "--kubelet-preferred-address-types=InternalIP",
                f"--token-auth-file={self.dir / 'tokens.csv'}",
                "--allow-privileged=true",
                "--v=1",
            ]

        with self._admin_http() as api:
            self._start_until_ready("kube-apiserver", argv, api, lambda: self.api_url, deadline)

    def _start_controller_manager(self, binary: Path, api: httpx.Client, deadline: float) -> None:
        pki = self.pki
        argv = [
            str(binary),
            f"--kubeconfig={self.kubeconfig}",
            f"--controllers={CONTROLLERS}",
            f"--service-account-private-key-file={pki.service_account_key}",
            f"--root-ca-file={pki.ca_cert}",
            f"--cluster-signing-cert-file={pki.ca_cert}",
            f"--cluster-signing-key-file={pki.ca_key}",
            "--use-service-account-credentials=false",
            "--leader-elect=false",
            "--secure-port=0",  # readiness is judged by what its controllers create, not by /healthz
            "--v=1",
        ]
        self._supervisor.start(self._process("kube-controller-manager", argv))

        def get(path: str) -> httpx.Response:
            return api.get(f"{self.api_url}{path}")

        def endpoint_ips() -> list[str]:
            reply = get("/api/v1/namespaces/default/endpoints/kubernetes")
            subsets = (reply.json().get("subsets") or []) if reply.status_code == 200 else []
            return [str(a.get("ip")) for s in subsets for a in s.get("addresses", [])]

        wait_until(
            endpoint_ips,
            condition=lambda ips: self.network.host_ip in ips,
            timeout=_remaining(deadline),
            what=f"the kubernetes Service's endpoints to list the bridge IP {self.network.host_ip}",
            processes=self.processes,
        )
        for what, path in [
            (
                "the default ServiceAccount in namespace default (kube-controller-manager's serviceaccount-controller)",
                "/api/v1/namespaces/default/serviceaccounts/default",
            ),
            (
                "ConfigMap kube-root-ca.crt in namespace default (its root-ca-certificate-publisher-controller)",
                "/api/v1/namespaces/default/configmaps/kube-root-ca.crt",
            ),
        ]:
            wait_until(
                functools.partial(get, path),
                condition=lambda reply: reply.status_code == 200 or f"HTTP {reply.status_code}",
                timeout=_remaining(deadline),
                what=what,
                processes=self.processes,
            )

    def _start_scheduler(self, binary: Path, deadline: float) -> None:
        def argv() -> list[str]:
            port = free_port("127.0.0.1")
            self._scheduler_port = port
            return [
                str(binary),
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                "--v=1",
            ]

        # Its serving cert is self-signed in memory; /readyz is public (always-allow path) and on loopback.
        with httpx.Client(timeout=5.0, verify=False) as http:
            self._start_until_ready("kube-scheduler", argv, http, lambda: f"https://127.0.0.1:{self._scheduler_port}",
                                    deadline)

    def _start_until_ready(self, name: str, argv: Callable[[], list[str]], http: httpx.Client,
                           base_url: Callable[[], str], deadline: float) -> ManagedProcess:
        """Start ``name`` and wait for its ``GET /readyz`` to answer ok (the URL is read again after a port retry)."""
        return self._start_component(
            name,
            argv,
            lambda: http.get(f"{base_url()}/readyz").text.strip(),
            lambda body: body == "ok",
            f"{name} GET /readyz to answer ok",
            deadline,
        )

    def _start_component(
        self,
        name: str,
        argv: Callable[[], list[str]],
        observe: Callable[[], str],
        ready: Callable[[str], bool],
        what: str,
        deadline: float,
    ) -> ManagedProcess:
        """Start ``name`` and wait for ``ready``; on a port conflict pick new ports and try again."""
        for attempt in range(1, _PORT_RETRIES + 1):
            proc = self._supervisor.start(self._process(name, argv()))
            try:
                wait_until(observe, condition=ready, timeout=_remaining(deadline), what=what, processes=self.processes)
                return proc
            except ProviderError:
                if proc.alive() or _PORT_CONFLICT not in proc.tail(50) or attempt == _PORT_RETRIES:
                    raise
                log.info("%s lost a port race (attempt %d); retrying with new ports", name, attempt)
                self._supervisor.stop_one(proc)
        raise AssertionError("unreachable")

    # ---------------------------------------------------------------------------------- stop

    def stop(self, keep_logs_in: Path | None = None) -> None:
        """Stop every component by PID (last started first), keep logs if asked, remove our files.

        The run directory itself and the bridge belong to the caller (see ``run_control_plane``).
        """
        keep = keep_logs_in or self.keep_logs_in
        stopped = [proc.pid for proc in self.processes]
        try:
            self._supervisor.stop(grace=10.0)
        finally:
            if self._run is not None and stopped:
                with contextlib.suppress(OSError):
                    self._run.forget_processes(stopped)
            if keep is not None and self.log_dir.is_dir():
                keep.mkdir(parents=True, exist_ok=True)
                for path in self.log_dir.glob("*.log"):
                    shutil.copy2(path, keep / path.name)
            shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------------------------- helpers

    def _record(self, proc: ManagedProcess) -> None:
        if self._run is not None:
            self._run.add_process(proc)

    def _process(self, name: str, argv: list[str]) -> ManagedProcess:
        env = marker_env(self._run.run_id) if self._run is not None else None
        return ManagedProcess(name, argv, self.log_paths[name], env=env, die_with_parent=self.die_with_parent)

    def _admin_http(self) -> httpx.Client:
        # An SSLContext, not verify=<path>/cert=<tuple>: httpx 0.28 ignores cert= when verify is a path.
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        context.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        return httpx.Client(verify=context, timeout=5.0)

    def _write_kubeconfig(self) -> None:
        """The admin kubeconfig (CA and client cert embedded, so it can be copied anywhere)."""
        write_kubeconfig(self.kubeconfig, server=self.api_url, ca_cert=self.pki.ca_cert,
                         client_cert=self.pki.admin_cert, client_key=self.pki.admin_key, user=ADMIN_USER)


def _remaining(deadline: float) -> float:
    return max(0.1, deadline - time.monotonic())


@contextlib.contextmanager
def run_control_plane(
    *,
    scheduler: bool = True,
    timeout: float = 120.0,
    keep_logs_in: Path | None = None,
    die_with_parent: bool = True,
    runs_root: Path | None = None,
    keep: bool = False,
) -> Iterator[LocalControlPlane]:
    """A whole run: reap stale runs, make a run dir and a network, start the control plane; undo it all on exit.

    With ``keep`` the processes outlive us (no parent-death signal) and, once started, nothing
    is undone on exit: the run becomes a kept cluster (see ``RunRecord.keep``).
    """
    reap_stale_runs(runs_root)
    run = new_run(runs_root)
    network: NodeNetwork | None = None
    control_plane: LocalControlPlane | None = None
    started = False
    if keep:
        die_with_parent = False
    try:
        network = NodeNetwork.create(owner=run.run_dir)
        run.set_network(network.name)
        control_plane = LocalControlPlane(
            run.run_dir,
            network,
            scheduler=scheduler,
            keep_logs_in=keep_logs_in,
            run=run,
            die_with_parent=die_with_parent,
        )
        control_plane.start(timeout)
        started = True
        yield control_plane
    finally:
        if not (keep and started):
            try:
                if control_plane is not None:
                    control_plane.stop()
            finally:
                if network is not None:
                    network.delete()
                run.teardown()
