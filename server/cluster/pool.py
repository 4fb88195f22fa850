"""The worker actors of a Ray cluster, as the server sees them: found or started, one per GPU,
handed out to jobs one at a time.

Actors are named `tokenflow-gpu-<node>-<n>` in the `tokenflow` namespace and detached, so
they outlive the server: a restarted server (or `tokenflow cluster status`) finds the same
actors with their models still loaded. Each is pinned to its node (hard node affinity): a
node that is switched off takes its actors with it, and a node that joins gets new ones at
the next look (every RECONCILE_S).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import RayError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from server.cluster.actor import EngineActor
from server.engine_host import EngineFactory

log = logging.getLogger("tokenflow.server")

NAMESPACE = "tokenflow"
PREFIX = "tokenflow-gpu-"
GPU = "GPU"  # the resource one actor holds one unit of
RECONCILE_S = 1.0
ACTOR_THREADS = 4  # edit + cancel + info + load answered side by side


@dataclass
class Slot:
    """One worker actor. `job` is the job it runs (None: free); `ready` once it answered."""

    name: str
    node_id: str
    handle: Any
    model: str | None = None
    job: str | None = None
    ready: bool = False
    pending: Any = None  # the first call's ref (a preload or an info) while not ready
    info: dict = field(default_factory=dict)


def connect(address: str) -> None:
    """Join the cluster at `address` ("auto": the one RAY_ADDRESS names, or the one running here)."""
    if not ray.is_initialized():
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, configure_logging=False)


def actor_class() -> Any:
    # num_cpus=0: the actor holds a GPU; its CPU threads are the GPU's feeders, not a scheduled CPU.
    options: dict[str, Any] = {"num_cpus": 0, "num_gpus": 1, "max_concurrency": ACTOR_THREADS}
    return ray.remote(**options)(EngineActor)


def existing_actors() -> list[tuple[str, Any]]:
    """(name, handle) of every worker actor alive in the cluster, whoever started it."""
    out = []
    for name in ray.util.list_named_actors():  # this namespace's (connect joined it); no dashboard needed
        if name.startswith(PREFIX):
            try:
                out.append((name, ray.get_actor(name, namespace=NAMESPACE)))
            except ValueError:  # gone between the list and the look-up
                pass
    return sorted(out)


def wanted_actors() -> dict[str, str]:
    """name -> node id: one actor per GPU of every node alive now."""
    wanted = {}
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        for n in range(int(node.get("Resources", {}).get(GPU, 0))):
            wanted[f"{PREFIX}{node['NodeID'][:16]}-{n}"] = node["NodeID"]
    return wanted


class ClusterPool:
    def __init__(self, factory: EngineFactory, default_model: str, preload: bool = True):
        self.factory = factory
        self.default_model = default_model
        self.preload = preload
        self.slots: dict[str, Slot] = {}
        self._cond = threading.Condition()
        self._class = actor_class()

    # --- the actors: found, started, dropped ---

    def reconcile(self) -> None:
        """Start actors for GPUs that have none, drop those whose node is gone, note who answered."""
        wanted = wanted_actors()
        with self._cond:
            for name in [n for n in self.slots if n not in wanted]:
                log.warning("cluster: worker %s left (its node is gone)", name)
                self._drop(name)
            new = [(n, node) for n, node in wanted.items() if n not in self.slots]
        for name, node in new:
            handle = self._class.options(
                name=name, namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
            ).remote(self.factory, self.default_model, name)
            # A found actor may still run a job of a server that died: stop it (that job was requeued).
            handle.cancel_all.remote()
            first = handle.load.remote(self.default_model) if self.preload else handle.info.remote()
            with self._cond:
                self.slots[name] = Slot(name, node, handle, pending=first)
        self._collect_ready()

    def _collect_ready(self) -> None:
        with self._cond:
            pending = [s for s in self.slots.values() if not s.ready]
        for slot in pending:
            done, _ = ray.wait([slot.pending], timeout=0)
            if not done:
                continue
            info: dict | None
            try:
                info = ray.get(slot.pending)
            except RayTaskError as exc:  # the preload failed: the actor is up; each job retries and says why
                log.warning("cluster: %s could not load %s: %s", slot.name, self.default_model, exc.cause)
                try:
                    info = ray.get(slot.handle.info.remote(), timeout=30)
                except RayError:
                    info = None
            except RayError:
                info = None
            with self._cond:
                if info is None:
                    log.warning("cluster: worker %s did not start", slot.name)
                    self._drop(slot.name)
                    continue
                slot.ready, slot.pending, slot.info, slot.model = True, None, info, info.get("model")
                log.info("cluster: worker %s ready on %s (model %s, loaded %d time(s))", slot.name,
                         info.get("host"), slot.model, info.get("loads", 0))
                self._cond.notify_all()

    def _drop(self, name: str) -> None:
        self.slots.pop(name, None)
        self._cond.notify_all()

    def lost(self, slot: Slot) -> None:
        """The actor died under a job: forget it (reconcile starts another if its node is still there)."""
        with self._cond:
            if self.slots.get(slot.name) is slot:
                self._drop(slot.name)

    # --- handing actors to jobs ---

    def wait_free(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: any(self._free()), timeout)

    def _free(self) -> list[Slot]:
        return [s for s in self.slots.values() if s.ready and s.job is None]

    def acquire(self, job_id: str, model: str) -> Slot | None:
        """A free actor for the job: one with its model loaded first, then one with nothing loaded."""
        with self._cond:
            free = self._free()
            if not free:
                return None
            slot = min(free, key=lambda s: (s.model != model, s.model is not None, s.name))
            slot.job = job_id
            return slot

    def release(self, slot: Slot) -> None:
        with self._cond:
            slot.job = None
            self._cond.notify_all()

    def workers(self) -> int:
        with self._cond:
            return sum(1 for s in self.slots.values() if s.ready)

    def idle(self) -> bool:
        with self._cond:
            return all(s.job is None for s in self.slots.values())

    def close(self) -> None:
        """Leave the cluster; the actors stay, detached, for the next server."""
        if ray.is_initialized():
            ray.shutdown()

