"""How many writes the API server has served on a resource: the operator's churn, counted where it lands.

Events cannot count churn: client-go's recorder lets 25 events per object through and then
one per five minutes, so a controller that rewrites an object every reconcile goes quiet in
its events within a minute. The API server counts every request it serves
(``apiserver_request_total``), a no-op update included, so two readings of ``/metrics``
bracket what happened in between.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from pytest_kuberay.observe.serve_probe import api_server_http

__all__ = ["WRITE_VERBS", "parse_write_requests", "write_requests"]

WRITE_VERBS = ("PUT", "PATCH")  # the API server labels requests with their HTTP verb


def parse_write_requests(metrics_text: str, group: str, resource: str) -> int:
    """Writes (``PUT``/``PATCH``, not of a subresource such as status) on ``group/resource`` so far."""
    total = 0.0
    for family in text_string_to_metric_families(metrics_text):
        if family.name != "apiserver_request":  # the parser drops a counter's _total suffix
            continue
        for sample in family.samples:
            labels = sample.labels
            if (sample.name == "apiserver_request_total" and labels.get("group") == group
                    and labels.get("resource") == resource and not labels.get("subresource")
                    and labels.get("verb") in WRITE_VERBS):
                total += sample.value
    return int(total)


def write_requests(api_client: Any, group: str, resource: str) -> int | None:
    """The API server's count of writes on ``group/resource``; None when ``/metrics`` is not readable."""
    with api_server_http(api_client, timeout=20.0) as client:
        response = client.get("/metrics")
    if response.status_code != 200:
        return None
    return parse_write_requests(response.text, group, resource)
