"""Field-level differences between two Serve app configs, for messages a person can read.

Deployments are lists in a Serve config; we key them by ``name`` so a diff
says ``deployments[Echo].user_config.version`` rather than ``deployments[0]...``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ABSENT", "FieldChange", "config_diff", "format_changes"]



class _Absent:
    """Marks a field one side does not have; shows as ``<absent>`` in messages and JSON."""

    def __repr__(self) -> str:
        return "<absent>"


ABSENT = _Absent()
_MISSING = ABSENT


@dataclass(frozen=True)
class FieldChange:
    path: str
    expected: Any
    actual: Any

    def __str__(self) -> str:
        return f"{self.path}: expected {self.expected!r}, got {self.actual!r}"


def _keyed(items: list[Any]) -> dict[str, Any] | None:
    if items and all(isinstance(i, dict) and "name" in i for i in items):
        return {str(i["name"]): i for i in items}
    return None


def _walk(path: str, expected: Any, actual: Any, out: list[FieldChange], subset: bool) -> None:
    if isinstance(expected, dict) and isinstance(actual, dict):
        keys = list(expected) + ([] if subset else [k for k in actual if k not in expected])
        for key in keys:
            child = f"{path}.{key}" if path else str(key)
            _walk(child, expected.get(key, _MISSING), actual.get(key, _MISSING), out, subset)
        return
    if isinstance(expected, list) and isinstance(actual, list):
        exp_keyed, act_keyed = _keyed(expected), _keyed(actual)
        if exp_keyed is not None and act_keyed is not None:
            names = list(exp_keyed) + ([] if subset else [n for n in act_keyed if n not in exp_keyed])
            for name in names:
                _walk(f"{path}[{name}]", exp_keyed.get(name, _MISSING), act_keyed.get(name, _MISSING), out,
                      subset)
            return
    if expected != actual:
        out.append(FieldChange(path or "<root>", expected, actual))


def config_diff(expected: Any, actual: Any, subset: bool = False) -> list[FieldChange]:
    """Leaf-level differences; with ``subset`` only fields present in ``expected`` are compared."""
    out: list[FieldChange] = []
    _walk("", expected, actual, out, subset)
    return out


def format_changes(changes: list[FieldChange], indent: str = "    ") -> str:
    return "\n".join(f"{indent}{change}" for change in changes)
