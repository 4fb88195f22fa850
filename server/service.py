"""What each request does: the server's behaviour, without sockets.

The front decodes and validates a request, then calls `Service.handle`; what comes
back is the reply (already encoded) and, for `subscribe` and `fetch`, a cursor the
front will drain to the client. Runs on the front's thread only.
"""

from __future__ import annotations

import dataclasses
import secrets
import sqlite3
from dataclasses import dataclass, field
from typing import Callable

from bridge import protocol as p
from server import batch_summary
from server.config import ServerConfig
from server.cursors import Cursor, EventCursor, ListCursor
from server.engine_host import EngineHost
from server.journal import Journal
from server.output_files import OutputFileError, read_chunk
from server.probe_request import Prober
from server.scheduler import Scheduler
from server.store import JobRecord, job_summary_fields
from server.submission import SubmitError, claim_output, resolve

CAPABILITIES = ["submit", "cancel", "list", "status", "subscribe", "fetch", "reorder", "proxy", "frame",
                "client_token", "curve", "delete", "probe", "queue", "retry", "dry_run", "named_outputs", "files",
                "read"]
QUEUE_PAUSED = "queue_paused"  # store setting: the pause outlives a restart


class RequestError(Exception):
    def __init__(self, code: str, message: str, hint: str = "", field: str | None = None):
        super().__init__(message)
        self.code, self.message, self.hint, self.field = code, message, hint, field


@dataclass
class Outcome:
    replies: list[list] = field(default_factory=list)
    cursor: Cursor | None = None
    cursor_key: tuple | None = None  # a new cursor replaces the peer's cursor of the same key
    drop_key: tuple | None = None


def error_message(rid: int | None, code: str, message: str, hint: str = "", field: str | None = None,
                  job: str | None = None) -> list:
    return p.encode(p.Envelope(p.Error(code=code, message=message, hint=hint, field=field), rid=rid, job=job))


class Service:
    def __init__(self, config: ServerConfig, journal: Journal, scheduler: Scheduler, engines: EngineHost,
                 server_id: str, new_job_id: Callable[[], str] = lambda: secrets.token_hex(6)):
        self.config = config
        self.journal = journal
        self.store = journal.store
        self.scheduler = scheduler
        self.engines = engines
        self.server_id = server_id
        self.new_job_id = new_job_id
        self.prober = Prober(journal.doorbell.ring)

    def handle(self, env: p.Envelope) -> Outcome:
        handler = getattr(self, f"_on_{env.type}")
        try:
            return handler(env)
        except RequestError as exc:
            return Outcome([error_message(env.rid, exc.code, exc.message, exc.hint, exc.field, env.job)])
        except SubmitError as exc:
            return Outcome([error_message(env.rid, exc.code, exc.message, exc.hint, exc.field, env.job)])

    def _reply(self, env: p.Envelope, body: p.Body, job: str | None = None) -> Outcome:
        return Outcome([p.encode(p.Envelope(body, rid=env.rid, job=job or env.job))])

    def _job(self, env: p.Envelope) -> JobRecord:
        job = self.store.get(env.job) if env.job else None
        if job is None:
            raise RequestError("unknown_job", f"There is no job {env.job!r} on this server.",
                               "List jobs with `tokenflow jobs list`.", "job")
        return job

    def info(self, job: JobRecord) -> p.JobInfo:
        return p.JobInfo(
            id=job.id, state=job.state, created=job.created, updated=job.updated, priority=job.priority,
            position=self.scheduler.position(job.id) if job.state == "queued" else None,
            last_seq=job.last_seq, attempts=job.attempts, outputs=list(job.outputs), error=job.error,
            progress=job.progress, **job_summary_fields(job),
        )

    # --- requests ---

    def _on_hello(self, env: p.Envelope) -> Outcome:
        if not set(env.body.versions) & set(p.SUPPORTED_VERSIONS):
            raise RequestError("bad_version", f"The client speaks protocol versions {env.body.versions}; this "
                               f"server speaks {list(p.SUPPORTED_VERSIONS)}.", "Update the client or the server.")
        cfg = self.config
        return self._reply(env, p.Welcome(
            server=cfg.name, server_id=self.server_id, version=p.PROTOCOL_VERSION,
            versions=list(p.SUPPORTED_VERSIONS), capabilities=CAPABILITIES, models=list(cfg.models),
            default_model=cfg.default_model, device=self.engines.device or cfg.device,
            engine_state=self.engines.state, limits=cfg.limits,
            allowed_output_dirs=[str(d) for d in cfg.allowed_output_dirs],
        ))

    def _on_submit(self, env: p.Envelope) -> Outcome:
        spec: p.JobSpec = env.body.spec
        if spec.client_token:
            existing = self.store.by_token(spec.client_token)
            if existing is not None:
                return self._accepted(env, existing)
        if self.store.count_queued() >= self.config.limits.max_queue:
            raise RequestError("queue_full", f"The queue holds {self.config.limits.max_queue} jobs already.",
                               "Wait for some to finish, or cancel some with `tokenflow jobs cancel ID`.")
        if env.body.dry_run:
            resolved = claim_output(resolve(spec, "JOBID", self.config), self.store.output_reserved)
            return self._reply(env, p.Ok(detail=resolved["output"]))
        job_id = self.new_job_id()
        resolved = resolve(spec, job_id, self.config)
        # On this thread, right before the job is stored: no two jobs ever get the same output name.
        claim_output(resolved, self.store.output_reserved)
        position = self.scheduler.position_for(spec.priority)
        try:
            job, _ = self.store.create_job(job_id, resolved, priority=spec.priority,
                                           client_token=spec.client_token, position=position)
        except sqlite3.IntegrityError:
            raise RequestError("internal_error", "Could not store the job (id or token clash).", "Submit again.")
        self.scheduler.push(job.id, job.priority, job.queue_order)
        self.journal.doorbell.ring()
        return self._accepted(env, job)


    def _accepted(self, env: p.Envelope, job: JobRecord) -> Outcome:
        first = self.store.events(job.id, 1, 1)[0]  # the stored `accepted` event, seq 1
        return Outcome([p.encode_raw(first.type, first.body, rid=env.rid, job=job.id, seq=first.seq)])

    def _on_cancel(self, env: p.Envelope) -> Outcome:
        job = self._job(env)
        if self.scheduler.cancel(job.id) == "removed":
            batch_summary.job_ending(self.store, job.id, "cancelled")
            self.journal.append(job.id, "cancelled", {"reason": "cancelled while queued"}, state="cancelled")
            job = self.store.get(job.id)
        return self._reply(env, p.JobStatus(info=self.info(job)))

    def _on_status(self, env: p.Envelope) -> Outcome:
        return self._reply(env, p.JobStatus(info=self.info(self._job(env))))

    def _on_list(self, env: p.Envelope) -> Outcome:
        if env.body.batch is not None:
            jobs = [j for j in self.store.list_batch(env.body.batch, env.body.limit)
                    if not env.body.states or j.state in env.body.states]
        else:
            jobs = self.store.list_jobs(env.body.states, env.body.limit)
        return self._reply(env, p.JobList(jobs=[self.info(j) for j in jobs]))

    def _on_reorder(self, env: p.Envelope) -> Outcome:
        job = self._job(env)
        entries = self.scheduler.reorder(job.id, priority=env.body.priority, position=env.body.position)
        if entries is None:
            raise RequestError("not_queued", f"Job {job.id} is {job.state}, not queued: only queued jobs move.")
        self.store.save_queue([(e.job_id, e.priority, e.order) for e in entries])
        return self._reply(env, p.JobStatus(info=self.info(self.store.get(job.id))))

    def _on_subscribe(self, env: p.Envelope) -> Outcome:
        job = self._job(env)
        body: p.Subscribe = env.body
        out = self._reply(env, p.Subscribed(state=job.state, last_seq=job.last_seq))
        out.cursor = EventCursor(self.journal, job.id, env.rid, body.from_seq, body.frames, body.proxies)
        out.cursor_key = ("subscribe", job.id)
        return out

    def _on_unsubscribe(self, env: p.Envelope) -> Outcome:
        job = self._job(env)
        out = self._reply(env, p.Ok(detail=f"unsubscribed from {job.id}"))
        out.drop_key = ("subscribe", job.id)
        return out

    def _on_fetch(self, env: p.Envelope) -> Outcome:
        job = self._job(env)
        body: p.Fetch = env.body
        if body.what == "outputs":
            return self._reply(env, p.Outputs(state=job.state, paths=list(job.outputs)))
        lo, hi = job.spec["first"], job.spec["last"]
        first = lo if body.first is None else body.first
        last = hi if body.last is None else body.last
        if first < lo or last > hi:
            raise RequestError("bad_range", f"Frames {first}:{last} are outside job {job.id}'s range {lo}:{hi}.",
                               f"Ask for frames within {lo}:{hi}.", "body.first" if first < lo else "body.last")
        events = self.store.frame_events(job.id, first, last)
        closing = p.encode(p.Envelope(p.FetchEnd(count=len(events)), rid=env.rid, job=job.id))
        return Outcome(cursor=ListCursor(self.journal, events, env.rid, closing), cursor_key=("fetch", env.rid))

    def _on_delete(self, env: p.Envelope) -> Outcome:
        from server.disk import DeleteRefused, delete_job, human

        job = self._job(env)
        try:
            freed = delete_job(self.store, self.scheduler, self.config.data, job.id)
        except DeleteRefused as exc:
            raise RequestError("job_running", str(exc), f"Cancel it first (`tokenflow jobs cancel {job.id}`), "
                               "then delete it.", "job")
        kept = f"; its outputs were kept ({', '.join(job.outputs)})" if job.outputs else ""
        return self._reply(env, p.Ok(detail=f"Deleted job {job.id} and {human(freed)} of stored data{kept}."))

    # --- the render queue (docs/queue.md) ---

    def _on_retry(self, env: p.Envelope) -> Outcome:
        job = self._job(env)
        record = self.store.retry(job.id, "retried by request")
        if record is None:
            raise RequestError("not_retryable", f"Job {job.id} is {job.state}: only failed or cancelled jobs are "
                               "queued again.", "A done job's outputs are kept; submit a new job to render again.")
        job = self.store.get(job.id)
        # The reply is made before the worker can take the job: its last_seq is the `requeued` event.
        info = dataclasses.replace(self.info(job), position=self.scheduler.position_for(job.priority))
        reply = self._reply(env, p.JobStatus(info=info))
        self.scheduler.push(job.id, job.priority, job.queue_order)
        self.journal.doorbell.ring()
        return reply

    def _on_queue(self, env: p.Envelope) -> Outcome:
        action = env.body.action
        if action is not None:
            paused = action == "pause"
            self.store.set_setting(QUEUE_PAUSED, paused)  # stored first: a restart keeps it
            self.scheduler.set_paused(paused)
        return self._reply(env, p.QueueState(paused=self.scheduler.paused, running=self.scheduler.current,
                                             queued=len(self.scheduler)))

    def _done_files(self, job: JobRecord) -> list[dict]:
        if job.state != "done":
            raise RequestError("not_done", f"Job {job.id} is {job.state}: only a done job's outputs can be fetched.",
                               f"Wait for it with `tokenflow jobs watch {job.id}`.")
        done = self.store.last_event(job.id, "done")
        files = (done.body.get("files") if done else None)
        if files is None:
            raise RequestError("no_files", f"Job {job.id} finished before this server listed outputs for download.",
                               "Run the job again to download its outputs.")
        return files

    def _on_files(self, env: p.Envelope) -> Outcome:
        job = self._job(env)
        files = self._done_files(job) if job.state == "done" else []
        return self._reply(env, p.Files(state=job.state, files=[p.FileInfo(**f) for f in files]))

    def _on_read(self, env: p.Envelope) -> Outcome:
        job = self._job(env)
        body: p.Read = env.body
        try:
            data, size = read_chunk(job.spec["output"], self._done_files(job), body.name, body.offset, body.length)
        except OutputFileError as exc:
            raise RequestError(exc.code, exc.message, exc.hint, "body.name") from None
        chunk = p.Chunk(name=body.name, offset=body.offset, size=size, eof=body.offset + len(data) >= size)
        return Outcome([p.encode(p.Envelope(chunk, rid=env.rid, job=job.id, blobs=(data,)))])

    def _on_probe(self, env: p.Envelope) -> Outcome:
        # Off this thread: a long file must not hold up everyone else's requests.
        return Outcome(cursor=self.prober.start(env.body.input, env.rid), cursor_key=("probe", env.rid))

    def _on_heartbeat(self, env: p.Envelope) -> Outcome:  # the front answers heartbeats itself
        return self._reply(env, p.Heartbeat(server_id=self.server_id))
