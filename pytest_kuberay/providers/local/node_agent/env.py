"""A container's environment, resolved the way the kubelet does it.

Order and precedence: the image's environment (here: the image profile's PATH/HOME plus
the agent's defaults), then ``envFrom`` sources in order, then ``env`` entries in order;
later wins. ``$(VAR)`` in env values refers to variables defined before it (``$$`` is a
literal ``$``; unknown references stay as written); ``command`` and ``args`` are expanded
with the final environment. Downward-API fields, resource fields, ConfigMap and Secret keys
are read from the pod and from the API (through an :class:`ObjectSource`).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pytest_kuberay.providers.local.node_agent.quantity import format_resource, parse_quantity

__all__ = [
    "ConfigError",
    "ObjectSource",
    "command_line",
    "container_env",
    "expand",
    "field_value",
    "resource_value",
]

JSON = dict[str, Any]

_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


class ConfigError(Exception):
    """The container cannot be configured (the kubelet's CreateContainerConfigError)."""


class ObjectSource(Protocol):
    """Where ConfigMaps and Secrets come from (the API server, or a dict in unit tests)."""

    def configmap(self, namespace: str, name: str) -> JSON | None:
        """The ConfigMap, or None if it does not exist."""

    def secret(self, namespace: str, name: str) -> JSON | None:
        """The Secret, or None if it does not exist."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: ``$$`` -> ``$``, ``$(NAME)`` -> value when defined."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2 : end]
                    out.append(env[name] if name in env else text[i : end + 1])
                    i = end + 1
                    continue
        out.append(char)
        i += 1
    return "".join(out)


def _quoted_map(values: Mapping[str, str]) -> str:
    """labels/annotations as the downward API writes them: ``key="value"`` lines, sorted."""
    return "\n".join(f'{key}="{value}"' for key, value in sorted(values.items()))


def field_value(pod: JSON, field_path: str) -> str:
    """A downward-API ``fieldRef.fieldPath`` of ``pod`` (status fields as the agent last set them)."""
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    match = re.match(r"^metadata\.(labels|annotations)\['(.+)'\]$", field_path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    simple: dict[str, Any] = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "metadata.labels": _quoted_map(meta.get("labels") or {}),
        "metadata.annotations": _quoted_map(meta.get("annotations") or {}),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP"),
        "status.hostIPs": ",".join(ip.get("ip", "") for ip in status.get("hostIPs") or []),
        "status.podIP": status.get("podIP"),
        "status.podIPs": ",".join(ip.get("ip", "") for ip in status.get("podIPs") or []),
    }
    if field_path not in simple:
        raise ConfigError(f"unsupported fieldRef.fieldPath {field_path!r}")
    value = simple[field_path]
    return "" if value is None else str(value)


def resource_value(pod: JSON, ref: JSON, allocatable: Mapping[str, str], default_container: str | None = None) -> str:
    """A ``resourceFieldRef``: the container's limit (or request), defaulting to the node's allocatable."""
    name = ref.get("containerName") or default_container
    spec = pod.get("spec", {})
    containers = {c["name"]: c for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])}
    if name not in containers:
        raise ConfigError(f"resourceFieldRef names unknown container {name!r}")
    resources = containers[name].get("resources") or {}
    kind, _, resource = str(ref.get("resource", "")).partition(".")
    if kind not in ("limits", "requests") or not resource:
        raise ConfigError(f"unsupported resourceFieldRef.resource {ref.get('resource')!r}")
    value = (resources.get(kind) or {}).get(resource)
    if value is None and kind == "requests":
        value = (resources.get("limits") or {}).get(resource)  # requests default to limits
    if value is None:
        value = allocatable.get(resource, "0") if kind == "limits" else "0"
    return format_resource(parse_quantity(value), ref.get("divisor"))


def _data(obj: JSON, *, secret: bool) -> dict[str, str]:
    values: dict[str, str] = {}
    for key, value in (obj.get("data") or {}).items():
        values[key] = base64.b64decode(value).decode(errors="replace") if secret else str(value)
    if not secret:
        for key, value in (obj.get("binaryData") or {}).items():
            values[key] = base64.b64decode(value).decode(errors="replace")
    return values


def _key_ref(objects: ObjectSource, namespace: str, ref: JSON, *, secret: bool) -> str | None:
    kind = "Secret" if secret else "ConfigMap"
    obj = objects.secret(namespace, ref["name"]) if secret else objects.configmap(namespace, ref["name"])
    if obj is None:
        if ref.get("optional"):
            return None
        raise ConfigError(f'{kind} "{ref["name"]}" not found')
    values = _data(obj, secret=secret)
    if ref["key"] not in values:
        if ref.get("optional"):
            return None
        raise ConfigError(f'couldn\'t find key {ref["key"]} in {kind} {namespace}/{ref["name"]}')
    return values[ref["key"]]


def container_env(
    pod: JSON,
    container: JSON,
    *,
    base: Mapping[str, str],
    service_env: Mapping[str, str],
    objects: ObjectSource,
    allocatable: Mapping[str, str],
) -> dict[str, str]:
    """The environment ``container`` of ``pod`` starts with (see the module docstring)."""
    namespace = pod["metadata"]["namespace"]
    defined: dict[str, str] = dict(service_env)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for field, secret in (("configMapRef", False), ("secretRef", True)):
            ref = source.get(field)
            if ref is None:
                continue
            obj = objects.secret(namespace, ref["name"]) if secret else objects.configmap(namespace, ref["name"])
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{"Secret" if secret else "ConfigMap"} "{ref["name"]}" not found')
            for key, data in _data(obj, secret=secret).items():
                if _ENV_NAME.match(prefix + key):
                    defined[prefix + key] = data
    for var in container.get("env") or []:
        name = var["name"]
        if "value" in var or "valueFrom" not in var:
            defined[name] = expand(str(var.get("value", "")), defined)
            continue
        source = var["valueFrom"]
        value: str | None = None
        if "fieldRef" in source:
            value = field_value(pod, source["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in source:
            value = resource_value(pod, source["resourceFieldRef"], allocatable, container["name"])
        elif "configMapKeyRef" in source:
            value = _key_ref(objects, namespace, source["configMapKeyRef"], secret=False)
        elif "secretKeyRef" in source:
            value = _key_ref(objects, namespace, source["secretKeyRef"], secret=True)
        else:
            raise ConfigError(f"env {name}: unsupported valueFrom {sorted(source)}")
        if value is not None:
            defined[name] = value
    return {**base, **defined}


def command_line(container: JSON, env: Mapping[str, str]) -> list[str]:
    """``command`` + ``args`` with ``$(VAR)`` expanded; images have no entrypoint here, so a command is required."""
    command: Sequence[str] = container.get("command") or []
    args: Sequence[str] = container.get("args") or []
    if not command:
        if not args:
            raise ConfigError(
                f"container {container['name']!r} has no command: images are not pulled by the local "
                "provider, so their entrypoint is unknown; give the container a command"
            )
        command, args = args[:1], args[1:]
    return [expand(part, env) for part in [*command, *args]]

