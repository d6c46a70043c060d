"""One PNG per upgrade: both clusters' capacity and traffic over time, and when each one's config changed.

Solid lines are what the RayService status says; dots are the live
``target_capacity`` each cluster's Serve reports. A vertical line marks every
change of a cluster's deployed config, labelled with the fingerprints, so a
config change on the active cluster mid-upgrade (bug 4189) stands out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_kuberay.observe.timeline import Timeline

__all__ = ["plot_timeline"]

_COLORS = {"old": "tab:blue", "new": "tab:orange"}


def plot_timeline(timeline: Timeline, path: Path, title: str = "") -> Path:
    """Write the timeline's plot to ``path`` (PNG) and return it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    old_cluster = timeline.initial_active
    observed = [(s, s.status) for s in timeline.samples if s.status is not None]
    clusters = [old_cluster, *sorted({c for _, st in observed for c in st.clusters() if c != old_cluster})]
    role_color = {c: _COLORS["old"] if c == old_cluster else _COLORS["new"] for c in clusters if c}

    if timeline.requests:
        fig, (ax, req_ax) = plt.subplots(2, 1, figsize=(11, 6.5), dpi=110, sharex=True,
                                         gridspec_kw={"height_ratios": [5, 1]})
        _plot_requests(req_ax, timeline)
    else:
        fig, ax = plt.subplots(figsize=(11, 5.5), dpi=110)
    for cluster in role_color:
        times, capacity, traffic, live_t, live = [], [], [], [], []
        for sample, status in observed:
            entry = next((c for c in (status.active, status.pending) if c and c.cluster == cluster), None)
            if entry is None:
                continue
            is_active = status.active is not None and status.active.cluster == cluster
            times.append(sample.t)
            capacity.append(100 if entry.target_capacity is None and is_active else (entry.target_capacity or 0))
            traffic.append(entry.traffic_routed_percent if entry.traffic_routed_percent is not None
                           else (100 if is_active else 0))
            snap = sample.snapshots.get(cluster)
            if snap is not None and snap.ok and snap.apps:
                live_t.append(sample.t)
                live.append(100.0 if snap.target_capacity is None else snap.target_capacity)
        color = role_color[cluster]
        name = f"{cluster} ({'old' if cluster == old_cluster else 'new'})"
        ax.step(times, capacity, where="post", color=color, lw=2.2, label=f"{name}: target capacity (status)")
        ax.step(times, traffic, where="post", color=color, lw=1.4, ls="--", label=f"{name}: traffic routed %")
        ax.plot(live_t, live, ".", color=color, ms=3, alpha=0.6, label=f"{name}: live target_capacity")

    for change in timeline.config_changes:
        color = role_color.get(change.cluster, "gray")
        suspicious = change.role == "active"
        ax.axvline(change.t, color="red" if suspicious else color, lw=1.2, ls=":" if not suspicious else "-")
        text = f"{change.role} {change.app}: {(change.before or 'none')[:6]}→{(change.after or 'none')[:6]}"
        ax.annotate(text, (change.t, 103), rotation=90, va="bottom", ha="right", fontsize=7,
                    color="red" if suspicious else "dimgray")
    ax.plot([], [], color="red", lw=1.2, label="config change on the ACTIVE cluster")
    ax.plot([], [], color="gray", lw=1.2, ls=":", label="config change on the pending cluster")

    ax.set_ylim(-3, 165)
    ax.set_yticks(range(0, 101, 20))
    (req_ax if timeline.requests else ax).set_xlabel("seconds since recording began")
    ax.set_ylabel("percent")
    ax.set_title(title or "incremental upgrade", fontsize=10, loc="left")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _plot_requests(ax: Any, timeline: Timeline) -> None:
    """One mark per request through the Gateway: which version answered it, and every failure in red."""
    # A request whose parser names no version (or that has no parser) is None: sort it first, as "2xx".
    versions = sorted({r.version for r in timeline.requests if r.ok}, key=lambda v: (v is not None, v or ""))
    rows = {v: i for i, v in enumerate(versions)}
    ok = [r for r in timeline.requests if r.ok]
    failed = [r for r in timeline.requests if not r.ok]
    ax.scatter([r.t for r in ok], [rows[r.version] for r in ok], s=6, c="black", marker="|")
    if failed:
        ax.scatter([r.t for r in failed], [len(versions)] * len(failed), s=14, c="red", marker="x")
    labels = [f"answered {v}" if v is not None else "answered 2xx" for v in versions] + (["FAILED"] if failed else [])
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_ylim(-0.7, len(labels) - 0.3)
    ax.set_title(f"{len(timeline.requests)} requests through the Gateway, {len(failed)} failed", fontsize=8,
                 loc="left")
    ax.grid(alpha=0.3)
