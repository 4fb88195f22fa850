"""The seam: what JobRun asks of its engine host and engine, answered by a worker actor.

JobRun (server/job_run.py) stays as it is for the local worker: it calls `loaded`, `get`,
then `engine.edit(frames, n, params, on_event, should_cancel)` and writes the outputs from
the events. Here `edit` runs on the actor, which reads the source from shared storage
itself (the `frames` JobRun offers are never read, so the server decodes nothing), and the
events come back through a Ray streaming generator in the order they were made. A cancel
is passed on to the actor, which stops at its next denoising step and keeps its model. A
lost actor (its node switched off) raises RunAgain: the job goes back to the queue.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

import ray
from ray.exceptions import RayError, RayTaskError

from server.cluster.actor import END
from server.cluster.pool import Slot
from server.job_run import RunAgain
from server.store import JobRecord
from tokenflow.errors import EngineError

MAX_ATTEMPTS = 3  # a job that has lost its worker this often stops (it may be what kills them)
CANCEL_POLL_S = 0.05


class WorkerLost(EngineError):
    code = "worker_lost"
    hint = ("Check the cluster's nodes (`tokenflow cluster status`, `ray status`); a job too big for a node's "
            "memory can take its worker down: try a smaller --size or a shorter --frames range.")


def _unwrap(exc: RayTaskError) -> BaseException:
    """The exception the actor raised, as it was raised (a ModelNotFound stays a ModelNotFound)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


class RemoteHost:
    """An EngineHost for one job on one actor."""

    def __init__(self, slot: Slot, job: JobRecord):
        self.slot = slot
        self.job = job
        self.lost = False

    def loaded(self, model: str) -> bool:
        return self.slot.model == model

    def get(self, model: str) -> RemoteEngine:
        with self.failures():
            info: dict = ray.get(self.slot.handle.load.remote(model))
        self.slot.model, self.slot.info = info.get("model"), info
        return RemoteEngine(self, model)

    def failures(self) -> _Failures:
        return _Failures(self)

    def lose(self, exc: BaseException) -> BaseException:
        """The exception JobRun gets for a lost actor: run again, or stop after MAX_ATTEMPTS."""
        self.lost = True
        where = f"worker {self.slot.name} (node {self.slot.info.get('host') or self.slot.node_id[:12]})"
        if self.job.attempts >= MAX_ATTEMPTS:
            return WorkerLost(f"The job lost its cluster worker {self.job.attempts} times (last: {where}, "
                              f"{type(exc).__name__}).")
        return RunAgain(f"{where} was lost ({type(exc).__name__}); the job runs again on another worker")


class _Failures:
    """Ray's errors turned into what JobRun understands."""

    def __init__(self, host: RemoteHost):
        self.host = host

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, RayTaskError):
            raise _unwrap(exc) from None
        if isinstance(exc, RayError):
            raise self.host.lose(exc) from exc


class RemoteEngine:
    def __init__(self, host: RemoteHost, model: str):
        self.host = host
        self.model = model

    def edit(self, frames: Iterable[Any], n_frames: int, params: Any, on_event: Callable[[Any], None] | None = None,
             should_cancel: Callable[[], bool] = lambda: False, matte: Iterable[Any] | None = None) -> Any:
        slot, spec = self.host.slot, self.host.job.spec
        emit = on_event or (lambda event: None)
        # An upload lives in the server's data folder, which the nodes do not share: its frames
        # travel with the call (the one case where pixels go through Ray's object store).
        given = list(frames) if getattr(spec, "upload", None) is not None else None
        # A matte goes the same way: with the call beside an upload or when it is an upload
        # itself (params.matte "upload:ID"), else read by the actor from the path the server
        # checked (as it reads the source).
        uploaded_matte = given is not None or getattr(spec, "matte_input", None) is not None
        given_matte = list(matte) if uploaded_matte and matte is not None else None
        stream = slot.handle.edit.options(num_returns="streaming").remote(
            self.host.job.id, spec.input, spec.first, spec.last, n_frames, params, self.model, given, given_matte)
        finished = threading.Event()
        watcher = threading.Thread(target=self._pass_cancel, args=(should_cancel, finished), daemon=True,
                                   name=f"cancel-{self.host.job.id}")
        watcher.start()
        try:
            with self.host.failures():
                for ref in stream:
                    kind, item = ray.get(ref)
                    if kind == "event":
                        emit(item)
                    elif kind == END:
                        return item
                    else:
                        raise item
            raise self.host.lose(RuntimeError("the event stream ended early"))
        except BaseException:
            if not self.host.lost:  # stopped on this side (a write failed): stop the actor too
                slot.handle.cancel.remote(self.host.job.id)
            raise
        finally:
            finished.set()
            watcher.join()

    def _pass_cancel(self, should_cancel: Callable[[], bool], finished: threading.Event) -> None:
        """A cancel reaches the actor while it works, not only when its next event arrives."""
        while not finished.wait(CANCEL_POLL_S):
            if should_cancel():
                self.host.slot.handle.cancel.remote(self.host.job.id)
                return
