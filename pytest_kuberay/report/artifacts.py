"""What a failed test leaves for a person: objects as YAML, events, and the component logs.

Secrets and kubeconfigs are never written; managedFields are dropped so the
YAML reads like what was applied.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

__all__ = ["collect_failure_artifacts", "save_timeline", "test_artifacts_dir"]

log = logging.getLogger(__name__)

_CUSTOM = (
    ("ray.io", "v1", "rayservices"),
    ("ray.io", "v1", "rayclusters"),
    ("gateway.networking.k8s.io", "v1", "gateways"),
    ("gateway.networking.k8s.io", "v1", "httproutes"),
)


def test_artifacts_dir(root: Path, nodeid: str) -> Path:
    """One test's artifacts directory under ``root``, named after its node id (created)."""
    safe = re.sub(r"[^A-Za-z0-9_.+-]+", "_", nodeid).strip("_")[:150]
    path = root / safe
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_timeline(timeline: Any, directory: Path, title: str) -> tuple[Path, Path]:
    """The timeline as JSON and as a plot, next to each other; a second upgrade in one test gets ``-2``."""
    from pytest_kuberay.report.plot import plot_timeline

    count = len(list(directory.glob("timeline*.json")))
    stem = "timeline" if count == 0 else f"timeline-{count + 1}"
    json_path = timeline.write_json(directory / f"{stem}.json")
    return json_path, plot_timeline(timeline, directory / f"{stem}.png", title=title)


def _clean(obj: dict[str, Any]) -> dict[str, Any]:
    obj.get("metadata", {}).pop("managedFields", None)
    return obj


def collect_failure_artifacts(stack: Any, namespace: str, out: Path) -> list[Path]:
    """Write the namespace's KubeRay/Gateway objects, pods, events and the component logs to ``out``."""
    cluster = stack.handle
    written: list[Path] = []
    out.mkdir(parents=True, exist_ok=True)
    try:
        for group, version, plural in _CUSTOM:
            items = cluster.custom.list_namespaced_custom_object(group, version, namespace, plural)["items"]
            path = out / f"{plural}.yaml"
            path.write_text(yaml.safe_dump_all([_clean(i) for i in items], sort_keys=False))
            written.append(path)
        pods = cluster.api_client.sanitize_for_serialization(cluster.core.list_namespaced_pod(namespace))
        (out / "pods.yaml").write_text(yaml.safe_dump_all([_clean(p) for p in pods["items"]], sort_keys=False))
        events = cluster.core.list_namespaced_event(namespace).items
        lines = [f"{e.last_timestamp or e.event_time} {e.type} {e.involved_object.kind}/{e.involved_object.name} "
                 f"{e.reason}: {e.message}" for e in events]
        (out / "events.txt").write_text("\n".join(lines) + "\n")
        written += [out / "pods.yaml", out / "events.txt"]
    except Exception as exc:  # artifacts must never hide the test's own failure
        log.warning("could not collect objects of namespace %s: %s", namespace, exc)
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    written += _container_logs(cluster, namespace, logs / "pods")
    for name, path in cluster.log_files.items():
        if path.is_file():
            shutil.copy2(path, logs / f"{name}.log")
            written.append(logs / f"{name}.log")
    return written


def _container_logs(cluster: Any, namespace: str, out: Path) -> list[Path]:
    """Every container's log through the API (``pods/log``), as on any cluster; a restarted one's previous log too."""
    written: list[Path] = []
    try:
        pods = cluster.core.list_namespaced_pod(namespace).items
    except Exception as exc:
        log.warning("could not list pods of namespace %s: %s", namespace, exc)
        return written
    out.mkdir(parents=True, exist_ok=True)
    for pod in pods:
        statuses = (pod.status.init_container_statuses or []) + (pod.status.container_statuses or [])
        for status in statuses:
            wanted = [False] + ([True] if status.restart_count else [])
            for previous in wanted:
                suffix = ".previous" if previous else ""
                path = out / f"{pod.metadata.name}.{status.name}{suffix}.log"
                try:
                    text = cluster.core.read_namespaced_pod_log(pod.metadata.name, namespace, container=status.name,
                                                                previous=previous)
                except Exception as exc:  # a container that never started has no log
                    text = f"<no log: {type(exc).__name__}: {getattr(exc, 'reason', exc)}>\n"
                path.write_text(text)
                written.append(path)
    return written
