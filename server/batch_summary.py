"""When a batch's last job ends, the server writes the batch summary beside its outputs.

Called as each job ends, before its terminal event is stored (worker), and as a
queued job is cancelled (front): cheap when the batch is still running. The summary goes into each
destination folder the batch's jobs wrote into, so an editor finds it with the renders.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from bridge.wire import summary
from bridge.wire.protocol import TERMINAL_STATES, JobState, is_batch_name
from server import output_files
from server.store import JobRecord, JobStore, job_summary_fields

log = logging.getLogger("tokenflow.server")


def _as_info(job: JobRecord) -> dict:
    return {"id": job.id, "state": job.state, "outputs": job.outputs, "error": job.error, **job_summary_fields(job)}


def job_ending(store: JobStore, job_id: str, state: JobState, outputs: list | None = None,
               error: dict | None = None, may_write: Callable[[Path], bool] | None = None) -> list[Path]:
    """Called just before the job's terminal event is stored: if that ends its batch, write the
    batch's summary (with this job's end) first, so whoever sees the batch end finds the summary.
    `may_write(path)`: whether the server may write that file (its allowed folders, never its own
    files: server/output_roots.py); None writes nowhere. Returns the files written."""
    job = store.get(job_id)
    batch = job.spec.batch if job else None
    if not batch or may_write is None:
        return []
    if not is_batch_name(batch):  # stored before batch names were checked: it could name a path
        log.warning("batch %r: not a plain name; its summary is not written", batch)
        return []
    jobs = store.list_batch(batch)
    infos = []
    for j in jobs:
        info = _as_info(j)
        if j.id == job_id:
            info.update(state=state, outputs=outputs or [], error=error)
        infos.append(info)
    if any(i["state"] not in TERMINAL_STATES for i in infos):
        return []
    content = summary.build(batch, infos)
    folders = dict.fromkeys(Path(j.spec.destination or output_files.base_folder(j.spec.output))
                            for j in jobs)
    written = []
    for folder in folders:
        path = folder / summary.filename(batch)
        if not may_write(path):  # a folder swapped for a link since the job was checked
            log.warning("batch %s: not writing its summary at %s, outside the allowed folders", batch, path)
            continue
        try:
            written.append(summary.write(content, folder))
        except OSError as exc:  # a summary that cannot be written must not stop the queue
            log.warning("batch %s: could not write its summary in %s: %s", batch, folder, exc)
    return written
