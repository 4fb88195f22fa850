"""What each request does: the server's behaviour, without sockets.

The front decodes and validates a request, then calls `Service.handle`; what comes
back is the reply (already encoded) and, for `subscribe` and `fetch`, a cursor the
front will drain to the client. Runs on the front's thread only.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bridge.wire import naming
from bridge.wire import protocol as p
from server import batch_summary, gpu_fit, upload_requests
from server.client_scope import is_admin, may_read
from server.config import ServerConfig
from server.cursors import Cursor, EventCursor, ListCursor
from server.engine_host import EngineView
from server.journal import Journal
from server.output_files import IDENTITY, OutputFileError, load_identity, read_chunk
from server.probe_request import Prober
from server.resolved_job import LOCAL_OWNER, ResolvedJob
from server.scheduler import Scheduler
from server.store import JobRecord, QueueFull, job_summary_fields
from server.submission import SubmitError, input_hint, resolve
from server.upload_results import ResultIndex
from server.uploads import UploadError, Uploads

RequestBody = TypeVar("RequestBody", bound=p.Body)
Result = TypeVar("Result")


def body_of(env: p.Envelope, kind: type[RequestBody]) -> RequestBody:
    """The request's body as its handler's type: `handle` routes by the body's type, so they agree."""
    assert isinstance(env.body, kind), f"a {env.type} request reached the {kind.TYPE} handler"
    return env.body

CAPABILITIES = ["submit", "cancel", "list", "status", "subscribe", "fetch", "reorder", "proxy", "frame",
                "client_token", "curve", "delete", "probe", "queue", "retry", "dry_run", "named_outputs", "files",
                "read", "stats", "upload", "matte_upload"]
QUEUE_PAUSED = "queue_paused"  # store setting: the pause outlives a restart
DRY_RUN_NAMES_S = 600.0  # how long a batch's checked names are remembered for its next rows' checks

# LOCAL_OWNER (server/resolved_job.py), the server's own user, may act on every job. Any
# other client identity acts on its own jobs only.

# Every error carries a hint (docs/protocol.md): this one when the raiser gave none.
DEFAULT_HINTS = {
    "bad_range": "Pick frames inside the clip: FIRST:LAST, counted from 0, inclusive.",
    "bad_params": "See the edit parameters in docs/protocol.md (types, ranges, defaults).",
    "not_queued": "Only queued jobs can be moved; see the job's state with `tokenflow jobs show ID`.",
    "media_error": "Check that the input is a readable video file on the server's machine.",
    "output_not_writable": "Pick an output folder the server's user can write to.",
    "forbidden": "Only the client that submitted a job (or the server's own user) may do this.",
}
GENERIC_HINT = "See docs/protocol.md."
QUEUE_FULL_HINT = ("Wait for some jobs to finish, cancel some with `tokenflow jobs cancel ID`, or send fewer jobs "
                   "(a batch is queued whole or not at all).")


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
    hint = hint or DEFAULT_HINTS.get(code, GENERIC_HINT)
    return p.encode(p.Envelope(p.Error(code=code, message=message, hint=hint, field=field), rid=rid, job=job))


class Service:
    def __init__(self, config: ServerConfig, journal: Journal, scheduler: Scheduler, engines: EngineView,
                 server_id: str, new_job_id: Callable[[], str] = lambda: secrets.token_hex(6)):
        self.config = config
        self.journal = journal
        self.store = journal.store
        self.scheduler = scheduler
        self.engines = engines
        self.server_id = server_id
        self.new_job_id = new_job_id
        # Checking a submission probes media files (a slow disk, a network share): that
        # runs here, off the front's thread, and `collect` hands the outcome back.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenflow-submit")
        self._reserving: set[str] = set()  # outputs of submits checked and not yet stored
        # (owner/batch) -> (when, names its dry-run rows took): pool thread only, dropped after a while
        self._dry_names: dict[str, tuple[float, set[str]]] = {}
        self._done: list[tuple] = []  # (reply_to, owner, env, future, finish) ready for `collect`
        self._lock = threading.Lock()
        self.owner = LOCAL_OWNER
        self.reply_to = b""
        self.prober = Prober(journal.doorbell.ring)
        self.uploads = Uploads(config.data.root, config.limits, config.free_space)
        self.results = ResultIndex(config.data.root)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def handle(self, env: p.Envelope, owner: str = LOCAL_OWNER, reply_to: bytes = b"") -> Outcome:
        """`owner`: who asks (LOCAL_OWNER: the server's own user); `reply_to`: where `collect`
        sends an outcome finished later."""
        handler = getattr(self, f"_on_{env.type}")
        self.owner, self.reply_to = owner, reply_to
        try:
            return handler(env)
        except (RequestError, SubmitError, UploadError) as exc:
            return Outcome([error_message(env.rid, exc.code, exc.message, exc.hint, exc.field, env.job)])

    def _later(self, env: p.Envelope, work: Callable[[], Result], finish: Callable[[Result], Outcome]) -> Outcome:
        """Run `work` on the pool; `finish(result)` runs on the front's thread via `collect`."""
        reply_to, owner = self.reply_to, self.owner

        def done(fut: Future) -> None:
            with self._lock:
                self._done.append((reply_to, owner, env, fut, finish))
            self.journal.doorbell.ring()

        self._pool.submit(work).add_done_callback(done)
        return Outcome()

    def collect(self) -> list[tuple[bytes, Outcome]]:
        with self._lock:
            done, self._done = self._done, []
        out = []
        for reply_to, owner, env, fut, finish in done:
            self.owner, self.reply_to = owner, reply_to
            try:
                outcome = finish(fut.result())
            except (RequestError, SubmitError) as exc:
                outcome = Outcome([error_message(env.rid, exc.code, exc.message, exc.hint, exc.field, env.job)])
            except Exception as exc:
                outcome = Outcome([error_message(env.rid, "internal_error", f"{type(exc).__name__}: {exc}",
                                                 "This is a server bug; the server log has details.")])
            out.append((reply_to, outcome))
        return out

    def _reply(self, env: p.Envelope, body: p.Body, job: str | None = None) -> Outcome:
        return Outcome([p.encode(p.Envelope(body, rid=env.rid, job=job or env.job))])

    reply = _reply

    def reply_raw(self, env: p.Envelope, body: p.Body, *, job: str, seq: int) -> Outcome:
        return Outcome([p.encode(p.Envelope(body, rid=env.rid, job=job, seq=seq))])

    def _job(self, env: p.Envelope, *, own: bool = True) -> JobRecord:
        """The job the header names; `own`: the asking client must own it."""
        job = self.store.get(env.job) if env.job else None
        if job is None:
            raise RequestError("unknown_job", f"There is no job {env.job!r} on this server.",
                               "List jobs with `tokenflow jobs list`.", "job")
        if own and not self._mine(job):
            raise RequestError("forbidden", f"Job {job.id} belongs to another client.", "", "job")
        return job

    def _mine(self, job: JobRecord) -> bool:
        return self.owner == LOCAL_OWNER or job.spec.owner == self.owner

    def info(self, job: JobRecord) -> p.JobInfo:
        summary: dict[str, Any] = job_summary_fields(job)
        mine = self._mine(job)
        if not mine:  # another client's job: its state shows, never its files or prompt
            summary = {k: ("" if k in ("input", "prompt") else [] if k == "variants" else None)
                       for k in summary}  # the wire's types
        return p.JobInfo(
            id=job.id, state=job.state, created=job.created, updated=job.updated, priority=job.priority,
            position=self.scheduler.position(job.id) if job.state == p.JobState.QUEUED else None,
            last_seq=job.last_seq, attempts=job.attempts, outputs=list(job.outputs) if mine else [],
            error=job.error if mine else None, progress=job.progress, **summary,
        )

    # --- requests ---

    def _on_hello(self, env: p.Envelope) -> Outcome:
        hello = body_of(env, p.Hello)
        if not set(hello.versions) & set(p.SUPPORTED_VERSIONS):
            raise RequestError("bad_version", f"The client speaks protocol versions {hello.versions}; this "
                               f"server speaks {list(p.SUPPORTED_VERSIONS)}.", "Update the client or the server.",
                               "body.versions")
        cfg = self.config
        return self._reply(env, p.Welcome(
            server=cfg.name, server_id=self.server_id, version=p.PROTOCOL_VERSION,
            versions=list(p.SUPPORTED_VERSIONS), capabilities=CAPABILITIES, models=list(cfg.models),
            default_model=cfg.default_model, device=self.engines.device or cfg.device,
            engine_state=self.engines.state, limits=cfg.limits,
            allowed_output_dirs=[str(d) for d in cfg.allowed_output_dirs],
        ))

    def _on_submit(self, env: p.Envelope) -> Outcome:
        submit = body_of(env, p.Submit)
        spec = submit.spec
        if spec.client_token:
            existing = self.store.by_token(self._token(spec) or "")
            if existing is not None:
                return self._accepted(env, existing)
        if spec.upload is not None and not submit.dry_run:
            reused = upload_requests.reuse(self, env, spec)  # the same pixels and parameters: that job's result
            if reused is not None:
                return reused
        self._check_queue(spec)
        owner = self.owner  # the pool thread must not read it: the next request changes it
        if submit.dry_run:
            return self._later(env, lambda: self._dry_run(spec, owner),
                               lambda resolved: self._reply(env, p.Ok(detail=resolved.output)))
        job_id = self.new_job_id()
        return self._later(env, lambda: self._resolve_and_reserve(spec, job_id, owner),
                           lambda resolved: self._store_job(env, job_id, resolved))

    def _token(self, spec: p.JobSpec) -> str | None:
        """The stored client token: scoped to the client, so one client's token never finds another's job."""
        if not spec.client_token:
            return None
        return spec.client_token if is_admin(self.owner) else f"{self.owner}/{spec.client_token}"

    def _dry_run(self, spec: p.JobSpec, owner: str) -> ResolvedJob:
        """Resolve as a submit would, queue nothing. Rows of one batch checked one after another get
        the names the real submits will get: a name an earlier row's check took counts as taken."""
        now = time.monotonic()
        self._dry_names = {k: v for k, v in self._dry_names.items() if v[0] > now - DRY_RUN_NAMES_S}
        key = f"{owner}/{spec.batch}" if spec.batch else None
        taken = self._dry_names.get(key, (now, set()))[1] if key else set()
        resolved = resolve(spec, "JOBID", self.config, lambda out: out in taken or self._reserved(out), self.uploads,
                           owner, self.store.output_owners)
        # With {job} in the template every real name differs: the placeholder's collisions are not real ones.
        if key and not (spec.output or "{job}" in (spec.name_template or naming.DEFAULT_TEMPLATE)):
            self._dry_names[key] = (now, taken | {resolved.output})
        return resolved

    def _reserved(self, output: str) -> bool:
        """Another job will write `output`: a stored one, or one checked but not stored yet."""
        with self._lock:
            if output in self._reserving:
                return True
        return self.store.output_reserved(output)

    def _resolve_and_reserve(self, spec: p.JobSpec, job_id: str, owner: str = LOCAL_OWNER) -> ResolvedJob:
        # One pool thread: checking a name and reserving it cannot interleave with another submit's.
        resolved = resolve(spec, job_id, self.config, self._reserved, self.uploads, owner, self.store.output_owners)
        gpu_fit.check(self.engines, resolved)
        with self._lock:
            self._reserving.add(resolved.output)
        return resolved

    def _check_queue(self, spec: p.JobSpec | None = None) -> None:
        """Early refusals (the queue's room is checked again as the job is stored)."""
        limit = self.config.limits.max_queue
        if self.store.count_queued() >= limit:
            raise RequestError("queue_full", f"The queue holds {limit} jobs already.", QUEUE_FULL_HINT)
        if spec is not None and spec.batch_jobs and not self.store.list_batch(spec.batch or "", 1):
            if self.store.count_queued() + spec.batch_jobs > limit:  # a batch's first job: room for all
                raise RequestError("queue_full", f"The queue has room for {limit} jobs "
                                   f"({self.store.count_queued()} queued); this batch has {spec.batch_jobs}.",
                                   QUEUE_FULL_HINT)
        max_jobs = self.config.retention.max_jobs
        if max_jobs and self.store.count_jobs() >= max_jobs:
            raise RequestError("store_full", f"The server keeps {max_jobs} jobs already, the most it stores.",
                               "Delete finished jobs with `tokenflow jobs delete ID`, or start the server with "
                               "a shorter --keep-days or a larger --max-jobs.")

    def _store_job(self, env: p.Envelope, job_id: str, resolved: ResolvedJob) -> Outcome:
        try:
            return self._store_resolved(env, job_id, resolved)
        finally:
            with self._lock:
                self._reserving.discard(resolved.output)

    def _store_resolved(self, env: p.Envelope, job_id: str, resolved: ResolvedJob) -> Outcome:
        spec = body_of(env, p.Submit).spec
        if spec.client_token:  # a retry that arrived while the first was being checked
            existing = self.store.by_token(self._token(spec) or "")
            if existing is not None:
                return self._accepted(env, existing)
        self._check_queue()
        resolved = dataclasses.replace(resolved, owner=self.owner)
        position = self.scheduler.position_for(spec.priority)
        try:
            job, _ = self.store.create_job(job_id, resolved, priority=spec.priority,
                                           client_token=self._token(spec), position=position,
                                           max_queued=self.config.limits.max_queue)
        except QueueFull as exc:
            raise RequestError("queue_full", str(exc), QUEUE_FULL_HINT) from None
        except sqlite3.IntegrityError as exc:
            raise RequestError("internal_error", "Could not store the job (id or token clash).", "Submit again.") from exc
        upload_requests.remember(self, spec, resolved, job.id)
        self.scheduler.push(job.id, job.priority, job.queue_order)
        self.journal.doorbell.ring()
        return self._accepted(env, job)


    def _accepted(self, env: p.Envelope, job: JobRecord) -> Outcome:
        first = self.store.events(job.id, 1, 1)[0]  # the stored `accepted` event, seq 1
        return Outcome([p.encode_raw(first.type, first.body, rid=env.rid, job=job.id, seq=first.seq)])

    def _on_cancel(self, env: p.Envelope) -> Outcome:
        job = self._job(env)
        if self.scheduler.cancel(job.id) == "removed":
            batch_summary.job_ending(self.store, job.id, p.JobState.CANCELLED,
                                     may_write=self.config.output_roots.permits)
            self.journal.append(job.id, p.Cancelled(reason="cancelled while queued"), state=p.JobState.CANCELLED)
            job = self.store.require(job.id)
        return self._reply(env, p.JobStatus(info=self.info(job)))

    def _on_status(self, env: p.Envelope) -> Outcome:
        return self._reply(env, p.JobStatus(info=self.info(self._job(env, own=False))))

    def _on_list(self, env: p.Envelope) -> Outcome:
        body = body_of(env, p.ListJobs)
        if body.batch is not None:
            jobs = [j for j in self.store.list_batch(body.batch, body.limit + 1 + body.offset)
                    if not body.states or j.state in body.states][body.offset:]
        else:
            jobs = self.store.list_jobs(body.states, body.limit + 1, offset=body.offset)
        more = len(jobs) > body.limit
        return self._reply(env, p.JobList(jobs=[self.info(j) for j in jobs[:body.limit]], more=more))

    def _on_reorder(self, env: p.Envelope) -> Outcome:
        job = self._job(env)
        reorder = body_of(env, p.Reorder)
        entries = self.scheduler.reorder(job.id, priority=reorder.priority, position=reorder.position)
        if entries is None:
            raise RequestError("not_queued", f"Job {job.id} is {job.state}, not queued: only queued jobs move.",
                               "", "job")
        self.store.save_queue([(e.job_id, e.priority, e.order) for e in entries])
        return self._reply(env, p.JobStatus(info=self.info(self.store.require(job.id))))

    def _on_subscribe(self, env: p.Envelope) -> Outcome:
        job = self._job(env)
        body = body_of(env, p.Subscribe)
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
        body = body_of(env, p.Fetch)
        if body.what == "outputs":
            return self._reply(env, p.Outputs(state=job.state, paths=list(job.outputs)))
        lo, hi = job.spec.first, job.spec.last
        first = lo if body.first is None else body.first
        last = hi if body.last is None else body.last
        if first < lo or last > hi:
            raise RequestError("bad_range", f"Frames {first}:{last} are outside job {job.id}'s range {lo}:{hi}.",
                               f"Ask for frames within {lo}:{hi}.", "body.first" if first < lo else "body.last")
        if body.variant >= len(job.spec.prompts):
            raise RequestError("bad_range", f"Job {job.id} has {len(job.spec.prompts)} prompt(s): no variant "
                               f"{body.variant}.", f"Ask for a variant from 0 to {len(job.spec.prompts) - 1}.",
                               "body.variant")
        events = self.store.frame_events(job.id, first, last, body.variant)
        closing = p.encode(p.Envelope(p.FetchEnd(count=len(events)), rid=env.rid, job=job.id))
        return Outcome(cursor=ListCursor(self.journal, events, env.rid, closing), cursor_key=("fetch", env.rid))

    def _on_delete(self, env: p.Envelope) -> Outcome:
        from bridge.display import format_bytes
        from server.disk import DeleteRefused, delete_job

        job = self._job(env)
        try:
            freed = delete_job(self.store, self.scheduler, self.config.data, job.id)
        except DeleteRefused as exc:
            raise RequestError("job_running", str(exc), f"Cancel it first (`tokenflow jobs cancel {job.id}`), "
                               "then delete it.", "job") from None
        kept = f"; its outputs were kept ({', '.join(job.outputs)})" if job.outputs else ""
        return self._reply(env, p.Ok(detail=f"Deleted job {job.id} and {format_bytes(freed)} of stored data{kept}."))

    # --- the render queue (docs/queue.md) ---

    def _on_retry(self, env: p.Envelope) -> Outcome:
        job = self._job(env)
        record = self.store.retry(job.id, "retried by request")
        if record is None:
            raise RequestError("not_retryable", f"Job {job.id} is {job.state}: only failed or cancelled jobs are "
                               "queued again.", "A done job's outputs are kept; submit a new job to render again.")
        job = self.store.require(job.id)
        # The reply is made before the worker can take the job: its last_seq is the `requeued` event.
        info = dataclasses.replace(self.info(job), position=self.scheduler.position_for(job.priority))
        reply = self._reply(env, p.JobStatus(info=info))
        self.scheduler.push(job.id, job.priority, job.queue_order)
        self.journal.doorbell.ring()
        return reply

    def _on_queue(self, env: p.Envelope) -> Outcome:
        action = body_of(env, p.QueueControl).action
        if action is not None and not is_admin(self.owner):
            raise RequestError("forbidden", f"Only the server's owner may {action} the whole queue.",
                               "Ask whoever runs the server; cancel or reorder your own jobs instead.", "body.action")
        if action is not None:
            paused = action == "pause"
            self.store.set_setting(QUEUE_PAUSED, paused)  # stored first: a restart keeps it
            self.scheduler.set_paused(paused)
        return self._reply(env, p.QueueState(paused=self.scheduler.paused, running=self.scheduler.current,
                                             queued=len(self.scheduler)))

    def _done_files(self, job: JobRecord) -> list[dict]:
        if job.state != p.JobState.DONE:
            raise RequestError("not_done", f"Job {job.id} is {job.state}: only a done job's outputs can be fetched.",
                               f"Wait for it with `tokenflow jobs watch {job.id}`.")
        done = self.store.last_event(job.id, p.Done.TYPE)
        files = (done.body.get("files") if done else None)
        if files is None:
            raise RequestError("no_files", f"Job {job.id} finished before this server listed outputs for download.",
                               "Run the job again to download its outputs.")
        return files

    def _on_files(self, env: p.Envelope) -> Outcome:
        job = self._job(env)
        files = self._done_files(job) if job.state == p.JobState.DONE else []
        return self._reply(env, p.Files(state=job.state, files=[p.FileInfo(**f) for f in files]))

    def _on_read(self, env: p.Envelope) -> Outcome:
        job = self._job(env)
        body = body_of(env, p.Read)
        try:
            identity = load_identity(self.journal.blob_path(job.id, IDENTITY))
            data, size = read_chunk(job.spec.output, self._done_files(job), body.name, body.offset, body.length,
                                    identity)
        except OutputFileError as exc:
            raise RequestError(exc.code, exc.message, exc.hint, "body.name") from None
        chunk = p.Chunk(name=body.name, offset=body.offset, size=size, eof=body.offset + len(data) >= size)
        return Outcome([p.encode(p.Envelope(chunk, rid=env.rid, job=job.id, blobs=(data,)))])

    def _on_probe(self, env: p.Envelope) -> Outcome:
        path = body_of(env, p.Probe).input
        # Refused alike whether the path exists or not: no existence oracle outside what the client may read.
        if path.strip() and os.path.isabs(os.path.expanduser(path)) and not may_read(self.owner, path,
                                                                                    self.config.input_roots):
            raise RequestError("input_not_allowed", f"This server does not let this client read {path}.",
                               input_hint(self.config), "body.input")
        # Off this thread: a long file must not hold up everyone else's requests.
        return Outcome(cursor=self.prober.start(path, env.rid), cursor_key=("probe", env.rid))

    def _on_heartbeat(self, env: p.Envelope) -> Outcome:  # the front answers heartbeats itself
        return self._reply(env, p.Heartbeat(server_id=self.server_id))

    def _on_stats(self, env: p.Envelope) -> Outcome:  # the front answers stats itself
        return self._reply(env, p.Stats())

    # --- uploaded frames (server/upload_requests.py) ---

    def sweep_uploads(self) -> list[str]:
        """Expired uploads deleted, and result keys of deleted jobs forgotten (any thread: the
        upload store locks itself, and an index entry is one file replaced atomically)."""
        self.results.prune(lambda job_id: self.store.get(job_id) is not None)
        return self.uploads.sweep(upload_requests.in_use(self))

    def _on_upload_open(self, env: p.Envelope) -> Outcome:
        return upload_requests.on_open(self, env)

    def _on_upload_frames(self, env: p.Envelope) -> Outcome:
        return upload_requests.on_frames(self, env)

    def _on_upload_delete(self, env: p.Envelope) -> Outcome:
        return upload_requests.on_delete(self, env)
