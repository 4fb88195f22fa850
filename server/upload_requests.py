"""The upload requests and the upload side of `submit`, for `server/service.py`
(docs/protocol.md, "Jobs whose source is uploaded frames")."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.display import format_bytes
from bridge.wire import protocol as p
from bridge.wire.matte_ref import matte_upload
from server import upload_matte, upload_source
from server.resolved_job import ResolvedJob
from server.upload_results import REUSABLE, result_key
from server.uploads import UploadError

if TYPE_CHECKING:
    from server.service import Outcome, Service


def in_use(service: Service) -> set[str]:
    """Uploads that queued or running jobs read."""
    jobs = service.store.list_jobs([p.JobState.QUEUED, p.JobState.RUNNING], limit=1 << 30)
    sources = {job.spec.upload for job in jobs if job.spec.upload}
    mattes = {matte_upload(job.spec.params.get("matte")) for job in jobs}  # params.matte "upload:ID"
    return sources | {m for m in mattes if m}


def on_open(service: Service, env: p.Envelope) -> Outcome:
    service.sweep_uploads()  # expired uploads make room before this one is admitted
    body = env.body
    assert isinstance(body, p.UploadOpen)
    return service.reply(env, service.uploads.open(body, service.owner))


def on_frames(service: Service, env: p.Envelope) -> Outcome:
    body = env.body
    assert isinstance(body, p.UploadFrames)
    return service.reply(env, service.uploads.receive(body, env.blobs, service.owner))


def on_delete(service: Service, env: p.Envelope) -> Outcome:
    body = env.body
    assert isinstance(body, p.UploadDelete)
    freed = service.uploads.delete(body.upload, service.owner, lambda: in_use(service))
    return service.reply(env, p.Ok(detail=f"Deleted upload {body.upload} ({format_bytes(freed)})."))


def _key(service: Service, spec: p.JobSpec, owner: str) -> tuple[str, str, str | None] | None:
    """(result key, digest, matte digest) of an upload spec, or None when it cannot be reused
    (the submit's own checks then refuse it by name, or run it)."""
    assert spec.upload is not None
    matte_id = matte_upload(spec.params.get("matte"))
    try:
        desc, _folder, digest = service.uploads.source(spec.upload, owner)
        first, last = upload_source.frame_range(spec.frames, desc)
        matte_digest = upload_matte.check(matte_id, service.uploads, owner, first, last)[1] if matte_id else None
    except (UploadError, upload_source.RangeError):  # refused by `resolve` with the right code
        return None
    key = result_key(spec, digest, first, last, spec.model or service.config.default_model, owner, matte_digest)
    return (key, digest, matte_digest) if key else None


def reuse(service: Service, env: p.Envelope, spec: p.JobSpec) -> Outcome | None:
    """`accepted` of the job that has (or is making) this result, or None."""
    found = _key(service, spec, service.owner)
    if found is None:
        return None
    key, digest, matte_digest = found
    job_id = service.results.job_for(key)
    job = service.store.get(job_id) if job_id else None
    if (job is None or job.state not in REUSABLE or job.spec.upload_digest != digest
            or job.spec.matte_digest != matte_digest):
        return None
    position = service.scheduler.position(job.id) if job.state == p.JobState.QUEUED else 0
    accepted = p.Accepted(position=position or 0, state=job.state)
    return service.reply_raw(env, accepted, job=job.id, seq=1)


def remember(service: Service, spec: p.JobSpec, resolved: ResolvedJob, job_id: str) -> None:
    """A new upload job is where its key's result comes from from now on."""
    if resolved.upload is None or resolved.upload_digest is None:
        return
    key = result_key(spec, resolved.upload_digest, resolved.first, resolved.last, resolved.model, resolved.owner,
                     resolved.matte_digest)
    if key:
        service.results.record(key, job_id)
