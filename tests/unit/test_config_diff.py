"""Field-level diffs of Serve app configs."""

from __future__ import annotations

from typing import Any

from pytest_kuberay.observe.config_diff import ABSENT, FieldChange, config_diff, format_changes


def app(version: str = "v1", replicas: int = 2, **extra: Any) -> dict[str, Any]:
    return {
        "name": "echo",
        "import_path": "echo:app",
        "deployments": [
            {"name": "Echo", "num_replicas": replicas, "user_config": {"version": version}},
            {"name": "Router", "num_replicas": 1},
        ],
        **extra,
    }


def test_equal_configs_have_no_changes() -> None:
    assert config_diff(app(), app()) == []


def test_nested_dicts_give_dotted_paths() -> None:
    expected = {"a": {"b": {"c": 1, "d": 2}}}
    actual = {"a": {"b": {"c": 1, "d": 3}}}
    assert config_diff(expected, actual) == [FieldChange("a.b.d", 2, 3)]


def test_deployments_are_keyed_by_name_not_position() -> None:
    reordered = app()
    reordered["deployments"].reverse()
    assert config_diff(app(), reordered) == []
    assert config_diff(app("v1"), app("v2", replicas=3)) == [
        FieldChange("deployments[Echo].num_replicas", 2, 3),
        FieldChange("deployments[Echo].user_config.version", "v1", "v2"),
    ]


def test_absent_fields_on_either_side() -> None:
    changes = config_diff(app(), app(route_prefix="/"))
    assert changes == [FieldChange("route_prefix", ABSENT, "/")]
    assert str(changes[0]) == "route_prefix: expected <absent>, got '/'"
    missing = config_diff(app(route_prefix="/"), app())
    assert [str(c) for c in missing] == ["route_prefix: expected '/', got <absent>"]


def test_a_whole_deployment_missing() -> None:
    actual = app()
    actual["deployments"] = actual["deployments"][:1]
    changes = config_diff(app(), actual)
    assert changes == [FieldChange("deployments[Router]", {"name": "Router", "num_replicas": 1}, ABSENT)]


def test_subset_mode_ignores_extra_actual_fields() -> None:
    expected = {"deployments": [{"name": "Echo", "user_config": {"version": "v2"}}]}
    actual = app("v2", route_prefix="/")
    assert config_diff(expected, actual, subset=True) == []
    assert config_diff(expected, actual) != []
    assert config_diff(expected, app("v1"), subset=True) == [
        FieldChange("deployments[Echo].user_config.version", "v2", "v1")
    ]


def test_unkeyed_lists_and_type_mismatches_compare_whole() -> None:
    assert config_diff({"x": [1, 2]}, {"x": [2, 1]}) == [FieldChange("x", [1, 2], [2, 1])]
    assert config_diff({"x": 1}, {"x": {"y": 1}}) == [FieldChange("x", 1, {"y": 1})]
    assert config_diff({"x": 1}, None) == [FieldChange("<root>", {"x": 1}, None)]


def test_format_changes_indents_each_line() -> None:
    text = format_changes([FieldChange("a", 1, 2), FieldChange("b.c", "x", ABSENT)], indent="  ")
    assert text == "  a: expected 1, got 2\n  b.c: expected 'x', got <absent>"
