"""What `tokenflow cluster status` shows: the cluster's nodes and GPUs, and each worker actor's
model, load count and running job, asked of the actors themselves (no server needed)."""

from __future__ import annotations

from typing import Any

import ray
from ray.exceptions import RayError

from server.cluster.pool import GPU, existing_actors

INFO_TIMEOUT_S = 10.0


def cluster_status() -> dict[str, Any]:
    """Call after `pool.connect`. Workers that do not answer in time are listed with state "not answering"."""
    nodes = [{
        "id": n["NodeID"], "ip": n.get("NodeManagerAddress", ""), "host": n.get("NodeManagerHostname", ""),
        "alive": bool(n.get("Alive")), "gpus": int(n.get("Resources", {}).get(GPU, 0)),
        "cpus": int(n.get("Resources", {}).get("CPU", 0)),
    } for n in ray.nodes()]
    actors = existing_actors()
    refs = [handle.info.remote() for _, handle in actors]
    workers = []
    for (name, _), ref in zip(actors, refs):
        try:
            workers.append(ray.get(ref, timeout=INFO_TIMEOUT_S))
        except RayError:
            workers.append({"name": name, "state": "not answering"})
    return {"nodes": nodes, "workers": workers}


def describe(status: dict[str, Any]) -> str:
    """The status as text for a terminal."""
    lines = []
    alive = [n for n in status["nodes"] if n["alive"]]
    lines.append(f"{len(alive)} node(s) alive, {sum(n['gpus'] for n in alive)} GPU(s), "
                 f"{len(status['workers'])} tokenflow worker(s)")
    for node in status["nodes"]:
        if not node["alive"]:
            continue
        lines.append(f"  node {node['host'] or '?'} ({node['ip']}, {node['id'][:12]}): {node['gpus']} GPU(s), "
                     f"{node['cpus']} CPU(s)")
        for w in status["workers"]:
            if w.get("node_id") == node["id"]:
                lines.append("    " + _worker_line(w))
    strays = [w for w in status["workers"] if w.get("node_id") not in {n["id"] for n in alive}]
    for w in strays:
        lines.append("  " + _worker_line(w))
    return "\n".join(lines)


def _worker_line(w: dict[str, Any]) -> str:
    job = f"running job {w['job']}" if w.get("job") else "free"
    model = w.get("model") or "no model loaded"
    return (f"{w['name']}: {w.get('state', '?')}, {model} (loaded {w.get('loads', 0)} time(s)), {job}, "
            f"{w.get('jobs_done', 0)} job(s) done")
