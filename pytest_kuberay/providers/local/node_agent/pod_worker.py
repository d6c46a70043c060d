"""One pod's whole life on this node, in one thread: sandbox, containers, probes, status, teardown.

The thread starts when the pod is bound to the node and ends when the pod is gone:

1. **Sandbox**: an IP and network namespace, the pod directory, volumes, ``/etc/hosts``, and
   the holder process (retried every few seconds while, say, a ConfigMap is missing, with
   the reason in the container's waiting state, as the kubelet does).
2. **Containers**: init containers one by one (native sidecars keep running), then every
   container; exits are handled by ``restartPolicy`` with exponential back-off; liveness
   failures restart the container; ``/etc/hosts`` is rewritten when Endpoints change and
   volumes are refreshed periodically. The status is patched whenever it changes.
3. **Teardown**, on a deletionTimestamp: preStop hooks, SIGTERM to every container's process
   group, SIGKILL after the grace period (capped), kill whatever is left in the pod's PID
   namespace, delete veth and namespace, remove the pod directory, then delete the pod with
   grace period 0 so the API server lets it go. A pod that completed (Succeeded/Failed) is
   torn down at once and finalized when deleted.

The holder is started from this thread with a parent-death signal, so this thread must live
as long as the pod does; it only returns after teardown.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from pytest_kuberay.providers.local.node_agent.containers import (
    ContainerProcess,
    ContainerRuntime,
    Termination,
    now_rfc3339,
)
from pytest_kuberay.providers.local.node_agent.context import NodeContext
from pytest_kuberay.providers.local.node_agent.env import ConfigError, command_line, container_env
from pytest_kuberay.providers.local.node_agent.hosts import RESOLV_CONF, render_hosts, write_in_place
from pytest_kuberay.providers.local.node_agent.images import image_profile
from pytest_kuberay.providers.local.node_agent.kube import ApiError
from pytest_kuberay.providers.local.node_agent.pod_network import NetworkError, PodNetwork
from pytest_kuberay.providers.local.node_agent.pod_sandbox import PodSandbox, SandboxError
from pytest_kuberay.providers.local.node_agent.pod_status import (
    ConditionTracker,
    ContainerFacts,
    container_status,
    pod_conditions,
    pod_phase,
)
from pytest_kuberay.providers.local.node_agent.probes import (
    ProbeResult,
    ProbeRunner,
    ProbeTimings,
    check_exec,
    check_http,
    check_tcp,
    resolve_port,
)
from pytest_kuberay.providers.local.node_agent.volumes import PodVolumes, VolumeError

__all__ = ["PodWorker"]

log = logging.getLogger(__name__)

JSON = dict[str, Any]

_SETUP_ERRORS = (VolumeError, SandboxError, NetworkError, ConfigError, ApiError, httpx.HTTPError, OSError)
#: Grace period when the agent itself stops, and when a pod vanished from the API (force deletion).
_SHUTDOWN_GRACE = 10.0
_VANISHED_GRACE = 2.0
_CONFIG_RETRY = 2.0
#: Strategic merge patches merge podIPs/hostIPs by IP; this element makes the patch replace the list
#: (a pod re-run by a restarted agent gets a new IP, and two IPs of one family are invalid).
_REPLACE_LIST = {"$patch": "replace"}


class PodWorker:
    """Runs one pod (see the module docstring)."""

    def __init__(self, ctx: NodeContext, pod: JSON) -> None:
        self.ctx = ctx
        self.pod = pod
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.key = f"{self.namespace}/{self.name}"
        spec = pod["spec"]
        self.init_runtimes = [ContainerRuntime(c, init=True) for c in spec.get("initContainers") or []]
        self.runtimes = [ContainerRuntime(c) for c in spec["containers"]]
        self.network: PodNetwork | None = None
        self.sandbox: PodSandbox | None = None
        self.volumes: PodVolumes | None = None
        self.start_time = now_rfc3339()
        self.sandbox_ready = False
        self._ip_reported = False
        self.phase = "Pending"
        self._sandbox_problem = ""
        self._conditions = ConditionTracker()
        self._last_status: JSON | None = None
        self._hosts_version = -1
        self._torn_down = False
        self._delete_requested = bool(meta.get("deletionTimestamp"))
        self._vanished = False
        self._shutdown = False
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pod-{self.key}", daemon=True)
        if spec.get("hostNetwork"):
            log.warning("pod %s asks for hostNetwork; it gets its own network namespace here", self.key)

    # ------------------------------------------------------------------------ from the agent

    def start(self) -> PodWorker:
        """Start the pod's thread."""
        self._thread.start()
        return self

    def update(self, pod: JSON) -> None:
        """A newer version of the pod from the watch."""
        with self._lock:
            self.pod = pod
            if pod["metadata"].get("deletionTimestamp"):
                self._delete_requested = True
        self._wake.set()

    def vanished(self) -> None:
        """The pod is gone from the API (force-deleted): kill it quickly, nothing to finalize."""
        self._vanished = True
        self._wake.set()

    def shutdown(self) -> None:
        """The agent stops: kill the pod's processes and remove its resources, leave the API object."""
        self._shutdown = True
        self._wake.set()

    def wake(self) -> None:
        """Something changed (Endpoints, a probe): sync soon."""
        self._wake.set()

    def join(self, timeout: float) -> bool:
        """Wait for the thread to finish; True if it did."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ------------------------------------------------------------------------------ lifecycle

    def _stopping(self) -> bool:
        return self._delete_requested or self._vanished or self._shutdown

    def _wait(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def _run(self) -> None:
        try:
            self._lifecycle()
        except Exception:
            log.exception("pod %s: worker failed", self.key)
        finally:
            try:
                self._stop_everything(self._grace())
            except Exception:
                log.exception("pod %s: teardown failed", self.key)
            if self._delete_requested and not self._vanished:
                self._finalize()
            self.done.set()

    def _lifecycle(self) -> None:
        self._push_status()
        while not self._stopping():
            try:
                self._setup_sandbox()
                break
            except _SETUP_ERRORS as exc:
                self._remove_sandbox(keep_ip=True)
                problem = str(exc)
                if problem != self._sandbox_problem:
                    reason = "FailedMount" if isinstance(exc, (VolumeError, ConfigError)) else "FailedCreatePodSandBox"
                    self.ctx.events.emit(self.pod, reason, problem, warning=True)
                self._sandbox_problem = problem
                self._push_status()
                self._wait(3.0)
        while not self._stopping():
            self._sync()
            self._push_status()
            if self.phase in ("Succeeded", "Failed") and not self._torn_down:
                self._stop_everything(0.0)
            self._wait(1.0)

    def _grace(self) -> float:
        if self._vanished:
            return _VANISHED_GRACE
        meta, spec = self.pod["metadata"], self.pod["spec"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        limit = _SHUTDOWN_GRACE if self._shutdown and not self._delete_requested else self.ctx.config.max_grace_seconds
        return float(min(float(grace), limit))

    # -------------------------------------------------------------------------------- sandbox

    def _hostname(self) -> str:
        return str(self.pod["spec"].get("hostname") or self.name)[:63]

    def _private_home(self) -> str | None:
        config = self.ctx.config
        profiles = [image_profile(str(rt.spec.get("image", "")), config.python_env) for rt in self._all()]
        homes = {p.home for p in profiles if p.private_home}
        return sorted(homes)[0] if homes else None

    def _setup_sandbox(self) -> None:
        config = self.ctx.config
        if self.network is None:  # one IP for the pod's life, across setup retries
            ip = self.ctx.ips.allocate()
            self.network = PodNetwork(config.bridge, ip, config.prefix_len, config.gateway_ip)
        ip = self.network.ip
        pod_dir = config.pods_dir / f"{self.namespace}_{self.name}_{self.uid[:8]}"
        self.sandbox = PodSandbox(pod_dir, self.network, env=self.ctx.inherited_env())
        self.ctx.state.add_pod(
            self.uid,
            name=self.key,
            netns=self.network.netns,
            host_veth=self.network.host_veth,
            ip=ip,
            pod_dir=str(pod_dir),
        )
        self.sandbox.make_dirs()
        etc = self.sandbox.etc_dir
        (etc / "resolv.conf").write_text(RESOLV_CONF)
        (etc / "hostname").write_text(self._hostname() + "\n")
        self._write_hosts()
        home = self._private_home()
        if home:
            # KubeRay's init container runs `bash -lc`: /etc/profile resets PATH, this restores the Ray env.
            (self.sandbox.home_dir / ".bash_profile").write_text(
                f'export PATH="{config.python_env / "bin"}:$PATH"\n[ -f ~/.bashrc ] && . ~/.bashrc\n'
            )
        self.volumes = PodVolumes(
            self._pod_view(),
            self.sandbox,
            objects=self.ctx.objects,
            tokens=self.ctx.objects,
            allocatable=config.allocatable,
        )
        self.volumes.materialize()
        self.network.create()
        mounts = self.volumes.mounts(private_home=home, keep_visible=(config.python_env,))
        holder = self.sandbox.start(mounts, self._hostname())
        # The holder first: a reaper that kills it before its parent leaves no orphan behind.
        self.ctx.state.add_process(self.uid, holder)
        if self.sandbox.launcher_pid is not None:
            self.ctx.state.add_process(self.uid, self.sandbox.launcher_pid)
        self.sandbox_ready = True
        self._ip_reported = True
        self._sandbox_problem = ""
        log.info("pod %s: sandbox ready, IP %s, netns %s", self.key, ip, self.network.netns)

    def _remove_sandbox(self, *, keep_ip: bool = False) -> None:
        """Kill the pod's processes, remove its network and directory (idempotent); ``keep_ip`` for a retry."""
        if self.sandbox is not None:
            self.sandbox.kill()
        for runtime in self._all():
            runtime.stop_probes()
            if runtime.process is not None:
                runtime.process.kill()
        if self.network is not None:
            self.network.delete()
            if not keep_ip:
                self.ctx.ips.release(self.network.ip)
        if self.sandbox is not None:
            self.sandbox.remove_dirs()
        if not keep_ip:
            self.ctx.state.remove_pod(self.uid)
        self.sandbox_ready = False

    def _write_hosts(self) -> None:
        if self.sandbox is None or self.network is None:
            return
        version = self.ctx.services.version
        spec = self.pod["spec"]
        text = render_hosts(
            pod_ip=self.network.ip,
            hostname=self._hostname(),
            namespace=self.namespace,
            subdomain=spec.get("subdomain"),
            services=self.ctx.services.snapshot(),
            host_aliases=spec.get("hostAliases") or [],
        )
        write_in_place(self.sandbox.hosts_file, text)
        self._hosts_version = version

    def _pod_view(self) -> JSON:
        """The pod with the status fields this agent owns filled in (for downward-API values)."""
        pod = dict(self.pod)
        status = dict(pod.get("status") or {})
        status["hostIP"] = self.ctx.config.gateway_ip
        status["hostIPs"] = [{"ip": self.ctx.config.gateway_ip}]
        if self.network is not None:
            status["podIP"] = self.network.ip
            status["podIPs"] = [{"ip": self.network.ip}]
        pod["status"] = status
        return pod

    # ----------------------------------------------------------------------------- containers

    def _all(self) -> list[ContainerRuntime]:
        return self.init_runtimes + self.runtimes

    def _policy(self) -> str:
        return str(self.pod["spec"].get("restartPolicy") or "Always")

    def _sync(self) -> None:
        if self.ctx.services.version != self._hosts_version:
            self._write_hosts()
        if self.volumes is not None and self.volumes.refresh_due():
            try:
                self.volumes.pod = self._pod_view()
                self.volumes.materialize()
            except _SETUP_ERRORS as exc:
                log.warning("pod %s: refreshing volumes: %s", self.key, exc)
        for runtime in self._all():
            self._observe(runtime)
        if not self._init_done():
            self._sync_init()
            return
        for runtime in self.runtimes:
            if runtime.running:
                continue
            if runtime.terminated is not None and runtime.backoff_until == 0.0:
                continue  # stopped for good
            if time.monotonic() >= runtime.backoff_until:
                self._start(runtime)

    def _init_done(self) -> bool:
        return all(rt.done or (rt.sidecar and rt.started) for rt in self.init_runtimes)

    def _init_failed(self) -> bool:
        return any(
            not rt.sidecar and rt.terminated is not None and rt.terminated.exit_code != 0 and rt.backoff_until == 0.0
            for rt in self.init_runtimes
        )

    def _sync_init(self) -> None:
        for runtime in self.init_runtimes:
            if runtime.done:
                continue
            if runtime.sidecar and runtime.started:
                continue
            if runtime.running or self._init_failed():
                return
            if time.monotonic() >= runtime.backoff_until:
                self._start(runtime)
            return

    def _should_restart(self, runtime: ContainerRuntime, exit_code: int) -> bool:
        if runtime.sidecar:
            return True
        policy = self._policy()
        if runtime.init:
            return exit_code != 0 and policy != "Never"
        return policy == "Always" or (policy == "OnFailure" and exit_code != 0)

    def _observe(self, runtime: ContainerRuntime) -> None:
        """Notice an exit (and schedule a restart) or a failed liveness probe (and kill the container)."""
        process = runtime.process
        if process is None:
            return
        code = process.poll()
        if code is None:
            liveness = runtime.probes.get("liveness")
            if liveness is not None and not liveness.healthy and runtime.started:
                message = liveness.last.message if liveness.last else ""
                self.ctx.events.emit(
                    self.pod,
                    "Killing",
                    f"Container {runtime.name} failed liveness probe, will be restarted: {message}",
                    warning=True,
                    container=runtime.name,
                )
                runtime.liveness_killed = True
                self._stop_container(runtime, self._grace())
                code = process.poll()
            if code is None:
                return
        runtime.stop_probes()
        reason = "Completed" if code == 0 else "Error"
        runtime.terminated = Termination(code, reason, process.started_at, now_rfc3339())
        runtime.process = None
        log.info("pod %s: container %s exited with %d", self.key, runtime.name, code)
        if runtime.init and not runtime.sidecar and code == 0:
            runtime.done = True
            return
        if self._should_restart(runtime, code):
            config = self.ctx.config
            delay = min(config.max_restart_backoff_seconds, config.restart_backoff_seconds * 2**runtime.restart_count)
            runtime.backoff_until = time.monotonic() + delay
            runtime.waiting_reason = "CrashLoopBackOff"
            runtime.waiting_message = (
                f"back-off {delay:g}s restarting failed container={runtime.name} pod={self.name}_{self.namespace}"
            )
            if code != 0 or runtime.liveness_killed:
                self.ctx.events.emit(self.pod, "BackOff", runtime.waiting_message, warning=True, container=runtime.name)
        else:
            runtime.backoff_until = 0.0
        runtime.liveness_killed = False

    def _base_env(self, image: str) -> dict[str, str]:
        profile = image_profile(image, self.ctx.config.python_env)
        return {
            "PATH": profile.path,
            "HOME": profile.home,
            "HOSTNAME": self._hostname(),
            "LANG": "C.UTF-8",
            # Ray exits within ~2 s of SIGTERM instead of draining for 30 s (FACTS.md section 6).
            "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
            # gRPC's c-ares resolver would wait on the host's nameserver; the native one reads /etc/hosts.
            "GRPC_DNS_RESOLVER": "native",
            "RAY_USAGE_STATS_ENABLED": "0",
            **self.ctx.inherited_env(),
        }

    def _start(self, runtime: ContainerRuntime) -> None:
        assert self.sandbox is not None
        spec = runtime.spec
        image = str(spec.get("image", ""))
        profile = image_profile(image, self.ctx.config.python_env)
        self.ctx.ray_versions.check(image)
        try:
            env = container_env(
                self._pod_view(),
                spec,
                base=self._base_env(image),
                service_env=self.ctx.config.service_env(),
                objects=self.ctx.objects,
                allocatable=self.ctx.config.allocatable,
            )
            argv = command_line(spec, env)
        except (ConfigError, ApiError, httpx.HTTPError) as exc:
            if runtime.waiting_message != str(exc):
                self.ctx.events.emit(self.pod, "Failed", f"Error: {exc}", warning=True, container=runtime.name)
            runtime.waiting_reason, runtime.waiting_message = "CreateContainerConfigError", str(exc)
            runtime.backoff_until = time.monotonic() + _CONFIG_RETRY
            return
        workdir = str(spec.get("workingDir") or profile.workdir)
        log_path = self.ctx.config.logs_dir / f"{self.namespace}_{self.name}_{self.uid[:8]}" / f"{runtime.name}.log"
        process = ContainerProcess(runtime.name, self.sandbox.enter_argv(workdir) + argv, env, log_path)
        try:
            process.start()
        except OSError as exc:
            runtime.waiting_reason, runtime.waiting_message = "RunContainerError", str(exc)
            runtime.backoff_until = time.monotonic() + _CONFIG_RETRY
            return
        self.ctx.state.add_process(self.uid, process.pid)
        if runtime.ran_once:
            runtime.last_termination = runtime.terminated
            runtime.restart_count += 1
        runtime.terminated = None
        runtime.process = process
        runtime.ran_once = True
        runtime.backoff_until = 0.0
        runtime.waiting_reason, runtime.waiting_message = "", ""
        self.ctx.events.emit(self.pod, "Started", f"Started container {runtime.name}", container=runtime.name)
        self._start_probes(runtime, env, workdir)

    def _start_probes(self, runtime: ContainerRuntime, env: dict[str, str], workdir: str) -> None:
        kinds = (("startup", "startupProbe"), ("readiness", "readinessProbe"), ("liveness", "livenessProbe"))
        for kind, field in kinds:
            probe = runtime.spec.get(field)
            if not probe or (runtime.init and not runtime.sidecar):
                continue
            runner = ProbeRunner(
                kind,
                ProbeTimings.of(probe),
                self._probe_check(probe, runtime.spec, env, workdir),
                self._on_probe,
                name=f"{self.key}/{runtime.name}",
            )
            runtime.probes[kind] = runner.start()

    def _probe_check(
        self, probe: JSON, container: JSON, env: dict[str, str], workdir: str
    ) -> Callable[[float], ProbeResult]:
        assert self.sandbox is not None and self.network is not None
        pod_ip = self.network.ip
        if "exec" in probe:
            argv = self._enter_for_probe(workdir) + [str(a) for a in probe["exec"].get("command") or []]
            return lambda timeout: check_exec(argv, env, timeout)
        if "httpGet" in probe:
            action = probe["httpGet"]
            host = action.get("host") or pod_ip
            return lambda timeout: check_http(host, resolve_port(action["port"], container), action, timeout)
        if "tcpSocket" in probe:
            action = probe["tcpSocket"]
            host = action.get("host") or pod_ip
            return lambda timeout: check_tcp(host, resolve_port(action["port"], container), timeout)
        log.warning("pod %s: probe type %s is not supported; treated as passing", self.key, sorted(probe))
        return lambda timeout: ProbeResult(True, "unsupported probe type, assumed healthy")

    def _enter_for_probe(self, workdir: str) -> list[str]:
        """Like the container prefix, but without ``setsid``: a timed-out probe is killed with its group."""
        assert self.sandbox is not None
        return self.sandbox.enter_argv(workdir, new_session=False)

    def _on_probe(self, runner: ProbeRunner) -> None:
        if not runner.healthy and runner.kind in ("readiness", "liveness"):
            container = runner.name.rsplit("/", 1)[-1]
            message = runner.last.message if runner.last else ""
            self.ctx.events.emit(
                self.pod,
                "Unhealthy",
                f"{runner.kind.capitalize()} probe failed: {message}",
                warning=True,
                container=container,
            )
        self._wake.set()

    def _stop_container(self, runtime: ContainerRuntime, grace: float) -> None:
        """preStop hook, SIGTERM, then SIGKILL after ``grace`` seconds."""
        process = runtime.process
        if process is None:
            return
        runtime.stop_probes()
        deadline = time.monotonic() + grace
        self._pre_stop(runtime, grace)
        process.signal(signal.SIGTERM)
        if process.wait(max(0.0, deadline - time.monotonic())) is None:
            log.info("pod %s: container %s ignored SIGTERM for %.0fs; killing it", self.key, runtime.name, grace)
            process.kill()

    def _pre_stop(self, runtime: ContainerRuntime, grace: float) -> None:
        hook = ((runtime.spec.get("lifecycle") or {}).get("preStop") or {}).get("exec")
        if not hook or self.sandbox is None or grace <= 0:
            return
        process = runtime.process
        env = process.env if process is not None else {}
        profile = image_profile(str(runtime.spec.get("image", "")), self.ctx.config.python_env)
        workdir = str(runtime.spec.get("workingDir") or profile.workdir)
        result = check_exec(self._enter_for_probe(workdir) + [str(a) for a in hook.get("command") or []], env, grace)
        if not result.ok:
            log.info("pod %s: preStop hook of %s failed: %s", self.key, runtime.name, result.message)

    def _stop_everything(self, grace: float) -> None:
        """Stop every container within ``grace`` seconds, then remove the sandbox."""
        if self._torn_down:
            return
        running = [rt for rt in self._all() if rt.running]
        if running and grace > 0:
            for runtime in running:
                self.ctx.events.emit(self.pod, "Killing", f"Stopping container {runtime.name}", container=runtime.name)
            threads = [
                threading.Thread(target=self._stop_container, args=(rt, grace), name=f"stop-{rt.name}")
                for rt in running
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(grace + 10)
        self._remove_sandbox()
        self._torn_down = True
        log.info("pod %s: stopped and removed", self.key)

    # --------------------------------------------------------------------------------- status

    def _status(self) -> JSON:
        facts = [
            ContainerFacts(
                ever_started=rt.ran_once,
                running=rt.running,
                exit_code=rt.terminated.exit_code if rt.terminated is not None else None,
            )
            for rt in self.runtimes
        ]
        if not self._torn_down or self.phase not in ("Succeeded", "Failed"):
            self.phase = pod_phase(
                self._policy(), init_failed=self._init_failed(), init_done=self._init_done(), containers=facts
            )
        init_done = self._init_done()
        for runtime in self._all():
            if runtime.ran_once or runtime.waiting_reason in ("CreateContainerConfigError", "RunContainerError"):
                continue
            if self._sandbox_problem:
                runtime.waiting_reason, runtime.waiting_message = "ContainerCreating", self._sandbox_problem
            elif not runtime.init and not init_done:
                runtime.waiting_reason, runtime.waiting_message = "PodInitializing", ""
            else:
                runtime.waiting_reason, runtime.waiting_message = "ContainerCreating", ""
        status: JSON = {
            "phase": self.phase,
            "hostIP": self.ctx.config.gateway_ip,
            "hostIPs": [{"ip": self.ctx.config.gateway_ip}, _REPLACE_LIST],
            "startTime": self.start_time,
            "conditions": pod_conditions(
                self._conditions,
                phase=self.phase,
                sandbox_ready=self.sandbox_ready,
                init_done=init_done,
                unready=[rt.name for rt in self.runtimes if not rt.ready],
                uninitialized=[rt.name for rt in self.init_runtimes if not (rt.done or rt.started)],
            ),
            "containerStatuses": [_with_null_states(container_status(rt, self.uid)) for rt in self.runtimes],
        }
        if self.init_runtimes:
            status["initContainerStatuses"] = [
                _with_null_states(container_status(rt, self.uid)) for rt in self.init_runtimes
            ]
        if self.network is not None and self._ip_reported:  # only once the sandbox is up, as the kubelet does
            status["podIP"] = self.network.ip
            status["podIPs"] = [{"ip": self.network.ip}, _REPLACE_LIST]
        return status

    def _push_status(self) -> None:
        status = self._status()
        if status == self._last_status:
            return
        body = {"metadata": {"uid": self.uid}, "status": status}
        try:
            self.ctx.kube.patch(f"/api/v1/namespaces/{self.namespace}/pods/{self.name}/status", body)
            self._last_status = status
        except ApiError as exc:
            if exc.status in (404, 409):
                log.info("pod %s: status not written (%s); the pod is gone or was replaced", self.key, exc.message)
                self._last_status = status
            elif exc.status == 422:
                log.warning("pod %s: the API server rejected our status: %s", self.key, exc.message)
                self._last_status = status  # the same status would be rejected again
            else:
                log.warning("pod %s: status update failed: %s", self.key, exc)
        except (httpx.HTTPError, OSError) as exc:
            log.warning("pod %s: status update failed: %s", self.key, exc)

    def _finalize(self) -> None:
        """Delete the pod object for good (grace 0, only this incarnation)."""
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": self.uid},
        }
        try:
            self.ctx.kube.delete(f"/api/v1/namespaces/{self.namespace}/pods/{self.name}", body)
            log.info("pod %s: deleted", self.key)
        except ApiError as exc:
            if exc.status not in (404, 409):
                log.warning("pod %s: final delete failed: %s", self.key, exc)
        except (httpx.HTTPError, OSError) as exc:
            log.warning("pod %s: final delete failed: %s", self.key, exc)


def _with_null_states(status: JSON) -> JSON:
    """Name every state key, with null for the absent ones: a merge patch must remove the old state."""
    state = status["state"]
    status["state"] = {key: state.get(key) for key in ("waiting", "running", "terminated")}
    last = status.get("lastState") or {}
    status["lastState"] = {key: last.get(key) for key in ("waiting", "running", "terminated")}
    return status
