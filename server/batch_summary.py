"""When a batch's last job ends, the server writes the batch summary beside its outputs.

Called after every job ends (worker) and after a queued job is cancelled (front):
cheap when the batch is still running (one indexed query). The summary goes into each
destination folder the batch's jobs wrote into, so an editor finds it with the renders.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bridge import summary
from server.store import JobRecord, JobStore, job_summary_fields

log = logging.getLogger("tokenflow.server")


def _as_info(job: JobRecord) -> dict:
    return {"id": job.id, "state": job.state, "outputs": job.outputs, "error": job.error, **job_summary_fields(job)}


def job_ended(store: JobStore, job_id: str) -> list[Path]:
    """Write the summary of the job's batch if every job in it has ended; returns the files written."""
    job = store.get(job_id)
    batch = job.spec.get("batch") if job else None
    if not batch:
        return []
    jobs = store.list_batch(batch)
    if any(j.state not in summary.TERMINAL for j in jobs):
        return []
    content = summary.build(batch, [_as_info(j) for j in jobs])
    folders = dict.fromkeys(Path(j.spec.get("destination") or Path(j.spec["output"]).parent) for j in jobs)
    written = []
    for folder in folders:
        try:
            written.append(summary.write(content, folder))
        except OSError as exc:  # a summary that cannot be written must not stop the queue
            log.warning("batch %s: could not write its summary in %s: %s", batch, folder, exc)
    return written
