"""List-then-watch of one kind of object, with a cache, in a thread of its own.

This is the client-go informer reduced to what the agent needs: a handler sees every
change, relists (and reports what vanished meanwhile) when the watch expires or the API
server restarts, and nothing ever stops it but :meth:`Informer.stop`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import httpx

from pytest_kuberay.providers.local.node_agent.kube import ApiError, KubeClient

__all__ = ["Handler", "Informer", "object_key"]

log = logging.getLogger(__name__)

JSON = dict[str, Any]
#: Called with ("ADDED" | "MODIFIED" | "DELETED", object).
Handler = Callable[[str, JSON], None]


def object_key(obj: JSON) -> str:
    """``namespace/name`` (or ``name`` for cluster-scoped objects)."""
    meta = obj.get("metadata", {})
    namespace = meta.get("namespace")
    return f"{namespace}/{meta.get('name')}" if namespace else str(meta.get("name"))


class Informer:
    """Keeps ``cache`` equal to the objects at ``path`` (with ``params`` as selectors) and calls ``handler``."""

    def __init__(self, kube: KubeClient, path: str, handler: Handler, *, name: str, **params: str) -> None:
        self.kube = kube
        self.path = path
        self.params = params
        self.handler = handler
        self.name = name
        self.cache: dict[str, JSON] = {}
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"informer-{name}", daemon=True)

    def start(self) -> Informer:
        """Start listing and watching in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the current watch request returns (it is a daemon thread, so exit does not wait)."""
        self._stop.set()

    def _emit(self, kind: str, obj: JSON) -> None:
        try:
            self.handler(kind, obj)
        except Exception:
            log.exception("%s: handler failed on %s %s", self.name, kind, object_key(obj))

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                resource_version = self._list()
                self.synced.set()
                backoff = 0.5
                self._watch(resource_version)
            except ApiError as exc:
                if exc.status != 410:  # 410 Gone: our resourceVersion is too old, relist at once
                    log.warning("%s: %s; relisting in %.1fs", self.name, exc, backoff)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 10.0)
            except (httpx.HTTPError, OSError, ValueError) as exc:
                if self._stop.is_set():
                    return
                log.info("%s: connection problem (%s); relisting in %.1fs", self.name, exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            except Exception:
                log.exception("%s: unexpected error; relisting", self.name)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def _list(self) -> str:
        listing = self.kube.get(self.path, **self.params)
        fresh = {object_key(obj): obj for obj in listing.get("items", [])}
        for key in set(self.cache) - set(fresh):
            self._emit("DELETED", self.cache.pop(key))
        for key, obj in fresh.items():
            kind = "MODIFIED" if key in self.cache else "ADDED"
            self.cache[key] = obj
            self._emit(kind, obj)
        return str(listing.get("metadata", {}).get("resourceVersion", ""))

    def _watch(self, resource_version: str) -> None:
        while not self._stop.is_set():
            for event in self.kube.watch(self.path, resource_version, self.params):
                kind, obj = event.get("type"), event.get("object", {})
                if kind == "ERROR":
                    code = int(obj.get("code", 0) or 0)
                    raise ApiError("WATCH", self.path, code or 500, str(obj.get("message", obj)))
                resource_version = str(obj.get("metadata", {}).get("resourceVersion", resource_version))
                if kind == "BOOKMARK":
                    continue
                key = object_key(obj)
                if kind == "DELETED":
                    self.cache.pop(key, None)
                else:
                    self.cache[key] = obj
                self._emit(str(kind), obj)
                if self._stop.is_set():
                    return
