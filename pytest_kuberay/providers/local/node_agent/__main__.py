"""``python -m pytest_kuberay.providers.local.node_agent``: run the node agent until SIGTERM/SIGINT.

On SIGTERM or SIGINT it tears down every pod it runs (processes, mounts, network
namespaces, veths, directories) and exits 0. ``--reap DIR`` removes what a crashed agent
left behind in DIR and exits.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from pytest_kuberay.providers.local.node_agent.agent import NodeAgent
from pytest_kuberay.providers.local.node_agent.config import AgentConfig
from pytest_kuberay.providers.local.node_agent.state import reap

log = logging.getLogger("pytest_kuberay.providers.local.node_agent")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m pytest_kuberay.providers.local.node_agent",
        description="A kubelet that runs each pod's containers as processes on this machine.",
    )
    parser.add_argument("--reap", type=Path, metavar="DIR", help="remove what a crashed agent left in DIR, then exit")
    parser.add_argument("--kubeconfig", type=Path)
    parser.add_argument("--node-name", default="local-node")
    parser.add_argument("--bridge", help="the bridge pod veths join (e.g. pkr0)")
    parser.add_argument("--cidr", help="pod CIDR on the bridge (e.g. 10.244.0.0/24)")
    parser.add_argument("--gateway-ip", help="the bridge's address: pods' default route and the node's InternalIP")
    parser.add_argument("--run-dir", type=Path, help="a directory the agent owns (pods, logs, state)")
    parser.add_argument("--api-host", help="API server address pods use (KUBERNETES_SERVICE_HOST)")
    parser.add_argument("--api-port", type=int, help="API server port pods use (KUBERNETES_SERVICE_PORT)")
    parser.add_argument(
        "--python-env", type=Path, default=Path(sys.prefix), help="the Python env with ray[serve] for Ray images"
    )
    parser.add_argument("--no-bind", action="store_true", help="do not bind unscheduled pods (a kube-scheduler runs)")
    parser.add_argument("--max-grace", type=float, default=30.0, help="cap on terminationGracePeriodSeconds")
    parser.add_argument("--restart-backoff", type=float, default=1.0, help="first restart back-off in seconds")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.reap is None:
        required = ("kubeconfig", "bridge", "cidr", "gateway_ip", "run_dir", "api_host", "api_port")
        missing = [f"--{name.replace('_', '-')}" for name in required if getattr(args, name) is None]
        if missing:
            parser.error(f"missing {', '.join(missing)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the agent (or reap); the exit status is 0 after a clean stop."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per API call is too much
    if args.reap is not None:
        for item in reap(args.reap):
            print(f"removed {item}")
        return 0
    config = AgentConfig(
        kubeconfig=args.kubeconfig,
        node_name=args.node_name,
        bridge=args.bridge,
        cidr=args.cidr,
        gateway_ip=args.gateway_ip,
        agent_dir=args.run_dir,
        api_host=args.api_host,
        api_port=args.api_port,
        python_env=args.python_env,
        bind_pods=not args.no_bind,
        max_grace_seconds=args.max_grace,
        restart_backoff_seconds=args.restart_backoff,
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if not stop.is_set():
            log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    agent = NodeAgent(config)
    try:
        agent.start()
        while not stop.wait(1.0):
            pass
    except Exception:
        log.exception("node agent failed")
        agent.stop()
        return 1
    agent.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
