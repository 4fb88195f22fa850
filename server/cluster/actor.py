"""The worker actor: one per GPU, long-lived, holding one loaded model between jobs.

A plain class here; pool.py makes it a named, detached Ray actor pinned to its node, so
it outlives the server that started it and a restarted server finds it again by name
(no model reload). It reads the job's source itself from shared storage (pixels never
travel through Ray on the way in) and streams the engine's events back as they are made;
the server writes the outputs. Several threads (max_concurrency) so `cancel` and `info`
are answered while `edit` runs.
"""

from __future__ import annotations

import os
import pickle
import queue
import socket
import threading
from collections.abc import Iterator
from typing import Any

from bridge.media.errors import MediaError
from server.engine_host import EngineFactory, EngineHost

END = "end"  # the last item an edit yields: ("end", stats dict) or ("error", exception)
ERROR = "error"


class SourceUnreadable(MediaError):
    """The job's source is not readable on the node that was given the job."""


class RemoteStats(dict):
    """The engine's stats as they came back: JobRun asks for `to_dict()`."""

    def to_dict(self) -> dict:
        return dict(self)


def _portable(exc: BaseException) -> BaseException:
    """The exception itself when it survives pickling, else one that keeps its type's name and message."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


class EngineActor:
    def __init__(self, factory: EngineFactory, default_model: str, name: str = ""):
        self.name = name
        self.loads = 0  # models loaded by this actor: a restarted server must not add to it
        self.jobs_done = 0  # edits that ran to their end here

        def counting(model: str) -> Any:
            engine = factory(model)
            self.loads += 1
            return engine

        self.host = EngineHost(counting, default_model)
        self.host.state = "idle"
        self.job: str | None = None
        self._cancel = threading.Event()
        self._busy = threading.Lock()

    # --- asked by the server ---

    def info(self) -> dict:
        import ray

        ctx = ray.get_runtime_context()
        return {
            "name": self.name, "node_id": ctx.get_node_id(), "host": socket.gethostname(),
            "ip": ray.util.get_node_ip_address(), "gpus": [str(g) for g in ray.get_gpu_ids()],
            "model": self.host.model, "state": self.host.state, "device": self.host.device,
            "loads": self.loads, "jobs_done": self.jobs_done, "job": self.job, "pid": os.getpid(),
        }

    def load(self, model: str) -> dict:
        """Load `model` (dropping another); raises what loading raises (ModelNotFound names the model)."""
        self.host.get(model)
        return self.info()

    def cancel(self, job_id: str) -> bool:
        """Ask the running edit to stop at its next cancel check (within one denoising step)."""
        if self.job == job_id:
            self._cancel.set()
            return True
        return False

    def cancel_all(self) -> None:
        """Stop whatever runs here: a restarted server requeued it and will send it again."""
        if self.job is not None:
            self._cancel.set()

    def edit(self, job_id: str, source: str, first: int, last: int, n_frames: int, params: Any,
             model: str, frames: list | None = None, matte: list | None = None) -> Iterator[tuple[str, Any]]:
        """Run one job; yields ("event", engine event) as the engine makes them, then one END or ERROR item.

        `frames`: the clip's frames when they are not in a file the nodes can read (an upload kept in
        the server's data folder); otherwise the actor reads `source` itself. `matte`: the matte's
        frames, sent with an upload's; otherwise the actor reads `params.matte` itself, if any."""
        if not self._busy.acquire(blocking=False):
            # The server hands this actor one job at a time, so a job still running is an
            # orphan of a server that died (and requeued it): stop it, then run this one.
            self._cancel.set()
            self._busy.acquire()
        self.job = job_id
        self._cancel.clear()
        events: queue.Queue[tuple[str, Any]] = queue.Queue()
        thread = threading.Thread(target=self._run, args=(source, first, last, n_frames, params, model, frames, matte, events),
                                  name=f"edit-{job_id}", daemon=True)
        try:
            thread.start()
            while True:
                kind, item = events.get()
                yield kind, item
                if kind in (END, ERROR):
                    break
        finally:
            # The server went away mid-stream (the generator closed): stop the engine too.
            self._cancel.set()
            thread.join()
            self.job = None
            self._busy.release()

    # --- inside the actor ---

    def _run(self, source: str, first: int, last: int, n_frames: int, params: Any, model: str,
             given: list | None, given_matte: list | None, events: queue.Queue) -> None:
        from bridge import media
        from bridge.media.matte import read_matte
        from tokenflow.events import Cancelled

        should_cancel = self._cancel.is_set
        try:
            if given is None:
                check_source(source)
            engine = self.host.get(model)

            def frames() -> Iterator[Any]:
                for frame in media.read_frames(source, first, last) if given is None else given:
                    if should_cancel():
                        raise Cancelled()
                    yield frame

            matte = given_matte
            if matte is None and params.matte:
                matte = read_matte(params.matte, source, first, last)
            stats = engine.edit(frames(), n_frames, params, on_event=lambda e: events.put(("event", e)),
                                should_cancel=should_cancel, matte=matte)
            self.jobs_done += 1
            events.put((END, RemoteStats(stats.to_dict())))
        except BaseException as exc:
            events.put((ERROR, _portable(exc)))


def check_source(source: str) -> None:
    """Before a job starts: its source must be readable here, at the path the server was given."""
    if os.access(source, os.R_OK) and os.path.isfile(source):
        return
    why = "does not exist" if not os.path.exists(source) else "is not a readable file"
    raise SourceUnreadable(
        f"The source {source} {why} on cluster node {socket.gethostname()} "
        f"({_node_ip()}): put sources on the shared storage every node mounts at the same path "
        "(docs/cluster.md), then submit the job again."
    )


def _node_ip() -> str:
    try:
        import ray

        return ray.util.get_node_ip_address()
    except Exception:
        return "?"

