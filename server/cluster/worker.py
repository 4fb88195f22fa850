"""The cluster's counterpart of server/worker.py: takes jobs from the same scheduler, in the
same order, and runs each with JobRun on a free worker actor, several at once.

One dispatcher thread waits for a free actor, then takes the next job; each job runs on
its own thread (JobRun blocks on the actor's event stream). A job whose actor was lost
comes back as QUEUED (RunAgain) and is put back in the scheduler at the front. A watcher
thread looks at the cluster every RECONCILE_S: nodes that joined get actors, gone ones
are dropped. Housekeeping (retention, cache) runs when no job is running, as locally.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from bridge.wire.protocol import JobState
from server.cluster.pool import RECONCILE_S, ClusterPool, Slot, connect
from server.cluster.remote_engine import RemoteHost
from server.config import ServerConfig
from server.engine_host import EngineFactory
from server.job_run import JobRun
from server.journal import Journal
from server.scheduler import Scheduler

log = logging.getLogger("tokenflow.server")


class ClusterEngines:
    """What the service reads of an engine host (Welcome's device and engine state), for the cluster.

    The panel's status bar shows `device`: it says the server is cluster-backed and how many workers it has.
    """

    def __init__(self, pool: ClusterPool):
        self.pool = pool
        self.default_model = pool.default_model

    @property
    def device(self) -> str:
        n = self.pool.workers()
        return f"Ray cluster, {n} worker{'s' if n != 1 else ''}"

    @property
    def state(self) -> str:
        return "ready" if self.pool.workers() else "loading"


class ClusterWorker:
    def __init__(self, journal: Journal, scheduler: Scheduler, pool: ClusterPool,
                 job_options: dict[str, Any] | None = None, after_job: Callable[[], object] | None = None):
        self.journal = journal
        self.scheduler = scheduler
        self.pool = pool
        self.job_options = job_options or {}
        self.after_job = after_job
        self._jobs: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._housekeeping = threading.Lock()
        self._dispatcher = threading.Thread(target=self._dispatch, name="tokenflow-cluster-dispatch", daemon=True)
        self._watcher = threading.Thread(target=self._watch, name="tokenflow-cluster-watch", daemon=True)

    def start(self) -> None:
        self._watcher.start()
        self._dispatcher.start()

    def join(self, timeout: float | None = None) -> None:
        """At shutdown: wait for the running jobs (cancelled and requeued), then leave the cluster.
        The actors stay, with their models, for the next server."""
        self._dispatcher.join(timeout)
        with self._lock:
            jobs = list(self._jobs.values())
        for thread in jobs:
            thread.join(timeout)
        self._watcher.join(timeout)
        self.pool.close()

    def _watch(self) -> None:
        while not self.scheduler.stopped:
            try:
                self.pool.reconcile()
            except Exception:
                log.exception("cluster: looking at the nodes failed")
            for _ in range(10):
                if self.scheduler.stopped:
                    break
                time.sleep(RECONCILE_S / 10)

    def _dispatch(self) -> None:
        while not self.scheduler.stopped:
            if not self.pool.wait_free(timeout=0.5):
                continue
            job_id = self.scheduler.take(timeout=0.5)
            if job_id is None:
                continue
            record = self.journal.store.get(job_id)
            slot = self.pool.acquire(job_id, record.spec.model) if record is not None else None
            if slot is None:  # the free actor left between the look and the take, or the job is gone
                self.scheduler.finish(job_id)
                if record is not None:
                    self.scheduler.push(job_id, record.priority, record.queue_order)
                continue
            thread = threading.Thread(target=self._run, args=(job_id, slot), name=f"tokenflow-job-{job_id}",
                                      daemon=True)
            with self._lock:
                self._jobs[job_id] = thread
            thread.start()

    def _run(self, job_id: str, slot: Slot) -> None:
        host: RemoteHost | None = None
        state: JobState | None = None
        try:
            job = self.journal.store.start_attempt(job_id)
            host = RemoteHost(slot, job)
            state = JobRun(
                job, self.journal, host,  # pyright: ignore[reportArgumentType]  # JobRun uses loaded + get
                should_cancel=partial(self.scheduler.cancel_requested, job_id),
                shutting_down=lambda: self.scheduler.stopped, **self.job_options,
            ).run()
        except Exception:
            log.exception("job %s: the cluster worker could not run it", job_id)
        finally:
            if host is not None and host.lost:
                self.pool.lost(slot)
            self.scheduler.finish(job_id)
            self.pool.release(slot)
            with self._lock:
                self._jobs.pop(job_id, None)
        if state == JobState.QUEUED and not self.scheduler.stopped:  # lost its actor: at the front again
            record = self.journal.store.require(job_id)
            self.scheduler.push(job_id, record.priority, record.queue_order)
        self._tidy()

    def _tidy(self) -> None:
        """Housekeeping when nothing runs (it deletes old jobs' files: never beside a job)."""
        if self.after_job is None or not self.pool.idle() or not self._housekeeping.acquire(blocking=False):
            return
        try:
            self.after_job()
        except Exception:
            log.exception("housekeeping failed")
        finally:
            self._housekeeping.release()


def cluster_backend(config: ServerConfig, factory: EngineFactory, preload: bool, journal: Journal,
                    scheduler: Scheduler, job_options: dict[str, Any],
                    after_job: Callable[[], object]) -> tuple[ClusterEngines, ClusterWorker]:
    """The cluster's engines view and worker for server/app.py; joins the cluster now, so a wrong
    address fails at start (ConnectionError) rather than at the first job."""
    connect(config.cluster or "auto")
    pool = ClusterPool(factory, config.default_model, preload=preload)
    pool.reconcile()
    log.info("cluster: joined %s; %d GPU worker(s) found or started", config.cluster, len(pool.slots))
    return ClusterEngines(pool), ClusterWorker(journal, scheduler, pool, job_options, after_job)
