"""The GPU worker: one thread that takes jobs from the scheduler and runs them, one at a time.

It is separate from the front's thread so the front keeps answering (hello, status,
cancel) while the GPU works; the model stays loaded in the engine host between jobs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from server.engine_host import EngineHost
from server.job_run import JobRun
from server.journal import Journal
from server.scheduler import Scheduler

log = logging.getLogger("tokenflow.server")


class Worker:
    def __init__(self, journal: Journal, scheduler: Scheduler, engines: EngineHost, preload: bool = True,
                 job_options: dict[str, Any] | None = None, after_job: Callable[[], object] | None = None):
        self.journal = journal
        self.scheduler = scheduler
        self.engines = engines
        self.preload = preload
        self.job_options = job_options or {}  # passed to every JobRun (output policy, disk reserve)
        self.after_job = after_job  # housekeeping between jobs (retention, cache trimming)
        self._thread = threading.Thread(target=self._loop, name="tokenflow-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _loop(self) -> None:
        if self.preload:
            try:
                self.engines.get(self.engines.default_model)
            except Exception as exc:
                # The state says why; each job retries the load and fails with the reason. One
                # sentence in the log (the panel's Server log shows it), the traceback only for debugging.
                log.error("The model %s could not be loaded: %s", self.engines.default_model, exc)
                log.debug("loading the default model failed", exc_info=True)
        while not self.scheduler.stopped:
            job_id = self.scheduler.take(timeout=0.5)
            if job_id is None:
                continue
            try:
                job = self.journal.store.start_attempt(job_id)
                JobRun(
                    job, self.journal, self.engines,
                    should_cancel=partial(self.scheduler.cancel_requested, job_id),
                    shutting_down=lambda: self.scheduler.stopped, **self.job_options,
                ).run()
            except Exception:
                log.exception("job %s: the worker could not run it", job_id)
            finally:
                self.scheduler.finish(job_id)
            if self.after_job is not None:
                try:
                    self.after_job()
                except Exception:
                    log.exception("housekeeping after job %s failed", job_id)
