"""``pytest-kuberay``: a local cluster that outlives the command, the toolchain build, and the reaper.

    pytest-kuberay cluster up [--kuberay-version=V]   start a kept local cluster (and KubeRay at V)
    pytest-kuberay cluster status                     what kept clusters run, and how to reach them
    pytest-kuberay cluster down [RUN]                 tear kept clusters down, leaving nothing
    pytest-kuberay toolchain [...]                    build (or reuse) the local provider's binaries
    pytest-kuberay reap                               remove what killed runs left behind

A kept cluster is what ``pytest --kuberay-keep-cluster`` reuses, and what
``--kuberay-provider=existing`` can be pointed at (its kubeconfig is printed).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from pytest_kuberay.errors import KubeRayTestError

if TYPE_CHECKING:
    from pytest_kuberay.settings import Settings
    from pytest_kuberay.versions import KubeRayVersion

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """Bad arguments give one line (and the way to --help), not a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _settings(version: str | None, gateway_class: str | None = None) -> Settings:
    from pytest_kuberay.settings import default_settings
    from pytest_kuberay.versions import parse_version_list

    versions = parse_version_list(version) if version else ()
    return default_settings(versions=versions, gateway_class=gateway_class, keep_cluster=True)


def cluster_up(args: argparse.Namespace) -> int:
    from pytest_kuberay.stacks.local import find_kept_run, local_stack

    existing = find_kept_run()
    if existing is not None and not args.another:
        print(f"a kept local cluster already runs: {existing.run_id} (kubeconfig "
              f"{existing.state.endpoints.get('kubeconfig')}); `pytest-kuberay cluster down` first, "
              "or pass --another", file=sys.stderr)
        return 1
    settings = _settings(args.kuberay_version, args.gateway_class)
    preload = _settings(args.images_for).versions if args.images_for else ()
    started = time.monotonic()
    with local_stack(_with_versions(settings, (*settings.versions, *preload)), keep=True) as stack:
        for version in preload:  # for --kuberay-provider=existing: images on the node, KubeRay not installed
            stack.provide_operator_image(version)
            stack.provide_images([stack.ray_images[version.label]])
        for version in settings.versions:
            operator = stack.install_kuberay(version)
            operator.ready()
            # Stop following its log (the kept operator stays): a daemon thread still reading the log
            # stream when the interpreter exits made this command abort (SIGABRT) in 1 of 4 runs.
            operator.stop()
            stack.cluster.run.keep({**stack.endpoints(), "kuberay_version": version.label})
        endpoints = stack.endpoints()
    print(f"local cluster {stack.cluster.run.run_id} up in {time.monotonic() - started:.1f}s (kept)")
    print(f"  kubeconfig: {endpoints['kubeconfig']}")
    print(f"  API server: {endpoints['api_url']}")
    print(f"  Gateway:    {endpoints['gateway_url']} (GatewayClass {endpoints['gateway_class']})")
    print("  KubeRay:    " + (", ".join(v.label for v in settings.versions) or "not installed"))
    if preload:
        print("  images:     operator and Ray images of " + ", ".join(v.label for v in preload) + " on the node "
              "(install with --kuberay-operator-image=localhost/pytest-kuberay/kuberay-operator:{version})")
    print("  reuse it with `pytest --kuberay-provider=local --kuberay-keep-cluster`, or as an existing cluster "
          f"with `--kuberay-provider=existing --kuberay-kubeconfig={endpoints['kubeconfig']}`")
    return 0


def _with_versions(settings: Settings, versions: tuple[KubeRayVersion, ...]) -> Settings:
    import dataclasses

    return dataclasses.replace(settings, versions=tuple(dict.fromkeys(versions)))


def cluster_status(args: argparse.Namespace) -> int:
    from pytest_kuberay._support.processes import is_running
    from pytest_kuberay.providers.local.run_registry import RunRecord, runs_root

    root = runs_root()
    shown = 0
    for run_dir in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            state = RunRecord.load(run_dir).state
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not state.kept and not args.all:
            continue
        shown += 1
        alive = [p.name for p in state.processes if is_running(p.pid, p.started_at)]
        status = "running" if state.kept_alive() else "in a pytest session" if state.owner_alive() else "stale"
        print(f"{state.run_id}  {'kept' if state.kept else 'session'}  {status}  "
              f"{len(alive)}/{len(state.processes)} processes alive  network {state.network or '-'}")
        for key in ("kubeconfig", "api_url", "gateway_url", "kuberay_version"):
            if key in state.endpoints:
                print(f"  {key}: {state.endpoints[key]}")
        if state.kept_alive():
            print(f"  node: {_node_summary(state.endpoints.get('kubeconfig'))}")
    if not shown:
        print("no kept local cluster (start one with `pytest-kuberay cluster up`)")
    return 0


def _node_summary(kubeconfig: str | None) -> str:
    if not kubeconfig:
        return "unknown"
    try:
        from kubernetes import client, config

        api = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
        nodes = api.list_node(_request_timeout=5).items
        pods = api.list_pod_for_all_namespaces(_request_timeout=5).items
    except Exception as exc:
        return f"unreachable ({type(exc).__name__})"
    ready = [str(n.metadata and n.metadata.name) for n in nodes
             if any(c.type == "Ready" and c.status == "True" for c in (n.status and n.status.conditions) or [])]
    return f"{len(ready)}/{len(nodes)} Ready ({', '.join(ready)}), {len(pods)} pods"


def cluster_down(args: argparse.Namespace) -> int:
    from pytest_kuberay.providers.local.run_registry import RunRecord, runs_root, teardown_run

    root = runs_root()
    targets = []
    for run_dir in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            record = RunRecord.load(run_dir)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if record.state.kept and (not args.run or record.run_id in args.run):
            targets.append(record)
    missing = set(args.run or []) - {r.run_id for r in targets}
    if missing:
        print(f"no kept local cluster {', '.join(sorted(missing))} (see `pytest-kuberay cluster status`)",
              file=sys.stderr)
        return 1
    for record in targets:
        removed = teardown_run(record.run_dir, record.state)
        print(f"removed kept cluster {record.run_id}: {len(removed)} items "
              f"({', '.join(r.split(' (')[0] for r in removed[:6])}{', ...' if len(removed) > 6 else ''})")
    if not targets:
        print("no kept local cluster to tear down")
    return 0


def reap(args: argparse.Namespace) -> int:
    from pytest_kuberay.providers.local.run_registry import main as registry_main

    return registry_main(["--reap"])


def _parser() -> _Parser:
    parser = _Parser(prog="pytest-kuberay", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    cluster = sub.add_parser("cluster", help="a local cluster that outlives the command")
    cluster_sub = cluster.add_subparsers(dest="action", required=True, parser_class=_Parser)
    up = cluster_sub.add_parser("up", help="start a kept local cluster: control plane, node, Gateway API, Traefik")
    up.add_argument("--kuberay-version", metavar="V[,V]", default=None,
                    help="also install KubeRay at this version (from its release manifests)")
    up.add_argument("--gateway-class", default=None, help="GatewayClass name for Traefik (default traefik)")
    up.add_argument("--images-for", metavar="V[,V]", default=None,
                    help="put these KubeRay versions' operator and Ray images on the node without installing "
                         "KubeRay (for --kuberay-provider=existing)")
    up.add_argument("--another", action="store_true", help="start one even if a kept cluster already runs")
    up.set_defaults(func=cluster_up)
    status = cluster_sub.add_parser("status", help="show kept clusters and how to reach them")
    status.add_argument("--all", action="store_true", help="also list runs of pytest sessions")
    status.set_defaults(func=cluster_status)
    down = cluster_sub.add_parser("down", help="tear kept clusters down, leaving nothing behind")
    down.add_argument("run", nargs="*", help="run ids (default: every kept cluster)")
    down.set_defaults(func=cluster_down)
    sub.add_parser("toolchain", help="build (or reuse) the local provider's binaries (see its own --help)")
    sub.add_parser("conformance", help="merge runs' conformance.json into docs/conformance.md (see its --help)")
    reaper = sub.add_parser("reap", help="remove what killed runs left: processes, networks, cgroups, directories")
    reaper.set_defaults(func=reap)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["toolchain"]:  # its own options (see `pytest-kuberay toolchain --help`)
        from pytest_kuberay._support.toolchain import main as toolchain_main

        return toolchain_main(argv[1:], prog="pytest-kuberay toolchain")
    if argv[:1] == ["conformance"]:
        from pytest_kuberay.report.conformance import main as conformance_main

        return conformance_main(argv[1:])
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        return int(args.func(args))
    except KubeRayTestError as exc:
        print(f"pytest-kuberay: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
