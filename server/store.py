"""The persistent job store: jobs, their parameters and state, and every event.

SQLite in WAL mode: a committed transaction survives the process being killed, and the
front thread can read while the worker thread writes. Pixels are not stored here: an
event that carries an image names a file in the job's folder (`blob`), relative to
that folder.

Invariants the rest of the server relies on:
- a job and its `accepted` event are written in one transaction, before anyone hears
  of the job;
- a job's events are numbered 1, 2, 3, ... without gaps (`last_seq` on the job row is
  the highest), and an event that ends a job changes the job's state in the same
  transaction.

Typed in, typed out: a job's spec is a `ResolvedJob` and an event is the protocol's own
body type; they become JSON here and nowhere else (`event_body`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.wire import protocol as p
from bridge.wire.protocol import RETRYABLE_STATES, JobState
from server.resolved_job import LOCAL_OWNER, ResolvedJob

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    state TEXT NOT NULL,
    spec TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    queue_order INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_seq INTEGER NOT NULL DEFAULT 0,
    outputs TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    progress TEXT,
    client_token TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    blob TEXT,
    frame INTEGER,
    created REAL NOT NULL,
    PRIMARY KEY (job_id, seq)
);
CREATE INDEX IF NOT EXISTS events_frames ON events(job_id, type, frame);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


# Which prompt an event's picture belongs to (docs/protocol.md, "Several prompts in one job"): read
# from the stored body, so the table keeps its columns and a database of an older server, whose
# events say no variant, opens as it is (they are variant 0).
_VARIANT = "COALESCE(json_extract(body, '$.variant'), 0)"


@dataclass(frozen=True)
class JobRecord:
    id: str
    state: JobState
    created: float
    updated: float
    spec: ResolvedJob
    priority: int
    queue_order: int
    attempts: int
    last_seq: int
    outputs: list
    error: dict | None
    progress: dict | None
    client_token: str | None


@dataclass(frozen=True)
class EventRecord:
    job_id: str
    seq: int
    type: str
    body: dict  # the body as the wire carries it (see `event_body`)
    blob: str | None  # file in the job's folder holding the binary frame, if any
    frame: int | None  # source frame number, for proxy and frame events


class StoreError(Exception):
    pass


def event_body(body: p.Body) -> dict[str, Any]:
    """An event as the store keeps it and replays it: the wire's fields, less `omitted`, which
    each delivery decides for its subscriber (server/cursors.py)."""
    return {k: v for k, v in p.to_wire(body).items() if k != "omitted"}


def _job(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
        id=row["id"],
        state=JobState(row["state"]),
        created=row["created"],
        updated=row["updated"],
        spec=ResolvedJob.from_dict(json.loads(row["spec"])),
        priority=row["priority"],
        queue_order=row["queue_order"],
        attempts=row["attempts"],
        last_seq=row["last_seq"],
        outputs=json.loads(row["outputs"]),
        error=json.loads(row["error"]) if row["error"] else None,
        progress=json.loads(row["progress"]) if row["progress"] else None,
        client_token=row["client_token"],
    )


def _event(row: sqlite3.Row) -> EventRecord:
    return EventRecord(
        job_id=row["job_id"],
        seq=row["seq"],
        type=row["type"],
        body=json.loads(row["body"]),
        blob=row["blob"],
        frame=row["frame"],
    )


class JobStore:
    """Thread-safe: one connection, one lock; every method is one transaction."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a killed process (the WAL is in the OS's hands);
        # FULL adds an fsync per commit against power loss, for the accept only (below).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _txn(self):
        return _Transaction(self._db, self._lock)

    # --- jobs ---

    def create_job(
        self, job_id: str, spec: ResolvedJob, *, priority: int, client_token: str | None, position: int,
        max_queued: int | None = None,
    ) -> tuple[JobRecord, EventRecord]:
        """Insert a queued job and its `accepted` event (seq 1) in one transaction.

        `max_queued`: the queue's room, checked in the same transaction (QueueFull): a job
        of a batch of `batch_jobs` needs room for the batch's jobs not stored yet, and the
        rows other batches still have to send are counted as taken, so a batch is queued
        whole or not at all.
        """
        now = time.time()
        with self._txn() as db:
            if max_queued is not None:
                _check_room(db, spec, max_queued, now)
            order = db.execute("SELECT COALESCE(MAX(queue_order), 0) + 1 FROM jobs").fetchone()[0]
            db.execute(
                "INSERT INTO jobs (id, created, updated, state, spec, priority, queue_order, last_seq, client_token)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)",
                (job_id, now, now, JobState.QUEUED, json.dumps(spec.to_dict()), priority, order, client_token),
            )
            body = event_body(p.Accepted(position=position, state=JobState.QUEUED))
            db.execute(
                "INSERT INTO events (job_id, seq, type, body, created) VALUES (?, 1, ?, ?, ?)",
                (job_id, p.Accepted.TYPE, json.dumps(body), now),
            )
        # The accept is the one promise made to a client that must outlive power loss.
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(FULL)")
        return self.require(job_id), EventRecord(job_id, 1, p.Accepted.TYPE, body, None, None)

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def require(self, job_id: str) -> JobRecord:
        """The job, which the caller has just written or holds on to: its absence is a bug."""
        job = self.get(job_id)
        if job is None:
            raise StoreError(f"unknown job {job_id}")
        return job

    def by_token(self, token: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE client_token = ?", (token,)).fetchone()
        return _job(row) if row else None

    def list_jobs(self, states: Iterable[str] | None = None, limit: int = 100, offset: int = 0) -> list[JobRecord]:
        sql, args = "SELECT * FROM jobs", []
        states = list(states or [])
        if states:
            sql += f" WHERE state IN ({','.join('?' * len(states))})"
            args += states
        sql += " ORDER BY created DESC, rowid DESC LIMIT ? OFFSET ?"
        args += [limit, offset]
        with self._lock:
            return [_job(r) for r in self._db.execute(sql, args).fetchall()]

    def queued(self) -> list[tuple[str, int, int]]:
        """(job id, priority, queue order) of every queued job."""
        with self._lock:
            rows = self._db.execute("SELECT id, priority, queue_order FROM jobs WHERE state = ?",
                                    (JobState.QUEUED,)).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def count_queued(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM jobs WHERE state = ?", (JobState.QUEUED,)).fetchone()[0]

    def save_queue(self, entries: Iterable[tuple[str, int, int]]) -> None:
        with self._txn() as db:
            db.executemany(
                "UPDATE jobs SET priority = ?, queue_order = ? WHERE id = ? AND state = ?",
                [(priority, order, j, JobState.QUEUED) for j, priority, order in entries],
            )

    def list_batch(self, batch: str, limit: int = 10_000) -> list[JobRecord]:
        """A batch's jobs in the order they were queued (their rows in the batch file)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM jobs WHERE json_extract(spec, '$.batch') = ? ORDER BY created, rowid LIMIT ?",
                (batch, limit),
            ).fetchall()
        return [_job(r) for r in rows]

    def output_reserved(self, output: str) -> bool:
        """True if a queued or running job will write `output` (names are handed out once): its
        own output, or one of the outputs its prompts are written to (ResolvedJob.outputs)."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM jobs WHERE json_extract(spec, '$.output') = ? AND state IN (?, ?)",
                (output, JobState.QUEUED, JobState.RUNNING),
            ).fetchone()
            several = [] if row is not None else self._db.execute(
                "SELECT spec FROM jobs WHERE state IN (?, ?) "
                "AND json_array_length(json_extract(spec, '$.params.variants')) > 0",
                (JobState.QUEUED, JobState.RUNNING),
            ).fetchall()
        return row is not None or any(output in ResolvedJob.from_dict(json.loads(r[0])).outputs for r in several)

    def output_owners(self, path: str) -> set[str]:
        """Who submitted the jobs that wrote the file `path` (as recorded in their outputs).

        The record `overwrite` is checked against: a client may replace only what its own jobs wrote.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT json_extract(jobs.spec, '$.owner') FROM jobs, json_each(jobs.outputs) AS o "
                "WHERE o.value = ?", (path,)).fetchall()
        return {row[0] or LOCAL_OWNER for row in rows}

    def retry(self, job_id: str, reason: str) -> EventRecord | None:
        """A failed or cancelled job goes to the back of the queue with a `requeued` event;
        None if it is in another state."""
        now = time.time()
        with self._txn() as db:
            row = db.execute("SELECT state, attempts, last_seq FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row[0] not in RETRYABLE_STATES:
                return None
            order = db.execute("SELECT COALESCE(MAX(queue_order), 0) + 1 FROM jobs").fetchone()[0]
            seq = row[2] + 1
            body = event_body(p.Requeued(attempt=row[1] + 1, reason=reason))
            db.execute("INSERT INTO events (job_id, seq, type, body, created) VALUES (?, ?, ?, ?, ?)",
                       (job_id, seq, p.Requeued.TYPE, json.dumps(body), now))
            db.execute(
                "UPDATE jobs SET state = ?, queue_order = ?, error = NULL, progress = NULL, outputs = '[]',"
                " last_seq = ?, updated = ? WHERE id = ?",
                (JobState.QUEUED, order, seq, now, job_id),
            )
        return EventRecord(job_id, seq, p.Requeued.TYPE, body, None, None)

    def last_event(self, job_id: str, type_: str) -> EventRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM events WHERE job_id = ? AND type = ? ORDER BY seq DESC LIMIT 1", (job_id, type_)
            ).fetchone()
        return _event(row) if row else None

    # --- settings that outlive a restart (the queue's pause) ---

    def setting(self, key: str, default: Any = None) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_setting(self, key: str, value: Any) -> None:
        with self._txn() as db:
            db.execute("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = "
                       "excluded.value", (key, json.dumps(value)))

    def start_attempt(self, job_id: str) -> JobRecord:
        with self._txn() as db:
            db.execute(
                "UPDATE jobs SET state = ?, attempts = attempts + 1, updated = ? WHERE id = ?",
                (JobState.RUNNING, time.time(), job_id),
            )
        return self.require(job_id)

    def requeue(self, job_id: str) -> None:
        """Put an interrupted job back at the front of the queue."""
        with self._txn() as db:
            front = db.execute("SELECT COALESCE(MIN(queue_order), 0) FROM jobs").fetchone()[0]
            db.execute(
                "UPDATE jobs SET state = ?, queue_order = ?, updated = ? WHERE id = ?",
                (JobState.QUEUED, front - 1, time.time(), job_id),
            )

    def requeue_interrupted(self) -> list[str]:
        """Jobs left `running` by a dead server go back to the front of the queue."""
        with self._lock:
            ids = [r[0] for r in self._db.execute("SELECT id FROM jobs WHERE state = ? ORDER BY queue_order DESC",
                                                  (JobState.RUNNING,))]
        for job_id in ids:  # last first, so the earliest ends up in front
            self.requeue(job_id)
        return ids[::-1]

    def delete_job(self, job_id: str) -> bool:
        """Forget a job that is not running: its row and its events. False if it runs (or is gone)."""
        with self._txn() as db:
            row = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row[0] == JobState.RUNNING:
                return False
            db.execute("DELETE FROM events WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        return True

    def count_jobs(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]

    def finished_jobs(self) -> list[tuple[str, float]]:
        """(id, last update) of every job in a terminal state, oldest first."""
        with self._lock:
            terminal = [s for s in JobState if s.terminal]
            rows = self._db.execute(
                f"SELECT id, updated FROM jobs WHERE state IN ({','.join('?' * len(terminal))}) ORDER BY updated, rowid",
                terminal,
            ).fetchall()
        return [(r[0], r[1]) for r in rows]

    # --- events ---

    def append_event(
        self,
        job_id: str,
        event: p.Body,
        *,
        blob: str | None = None,
        frame: int | None = None,
        state: JobState | None = None,
        outputs: list | None = None,
        error: dict | None = None,
    ) -> EventRecord:
        """Store the job's next event; `state` etc. update the job in the same transaction."""
        type_, body = event.TYPE, event_body(event)
        now = time.time()
        with self._txn() as db:
            row = db.execute("SELECT last_seq FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise StoreError(f"unknown job {job_id}")
            seq = row[0] + 1
            db.execute(
                "INSERT INTO events (job_id, seq, type, body, blob, frame, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (job_id, seq, type_, json.dumps(body), blob, frame, now),
            )
            sets, args = ["last_seq = ?", "updated = ?"], [seq, now]
            if type_ == p.Progress.TYPE:
                sets.append("progress = ?")
                args.append(json.dumps(body))
            if state is not None:
                sets.append("state = ?")
                args.append(state)
            if outputs is not None:
                sets.append("outputs = ?")
                args.append(json.dumps(outputs))
            if error is not None:
                sets.append("error = ?")
                args.append(json.dumps(error))
            db.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id = ?", (*args, job_id))
        return EventRecord(job_id, seq, type_, body, blob, frame)

    def events(self, job_id: str, from_seq: int = 1, limit: int = 256) -> list[EventRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM events WHERE job_id = ? AND seq >= ? ORDER BY seq LIMIT ?",
                (job_id, from_seq, limit),
            ).fetchall()
        return [_event(r) for r in rows]

    def frame_events(self, job_id: str, first: int | None, last: int | None, variant: int = 0) -> list[EventRecord]:
        """One prompt's stored `frame` events in the range, by frame number."""
        lo = -(1 << 62) if first is None else first
        hi = (1 << 62) if last is None else last
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM events WHERE job_id = ? AND type = ? AND frame BETWEEN ? AND ? AND {_VARIANT} = ? "
                "ORDER BY frame",
                (job_id, p.Frame.TYPE, lo, hi, variant),
            ).fetchall()
        return [_event(r) for r in rows]

    def sent_frames(self, job_id: str, type_: str) -> set[tuple[int, int]]:
        """(variant, frame number) pairs that already have an event of this type (exactly once across re-runs)."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_VARIANT}, frame FROM events WHERE job_id = ? AND type = ? AND frame IS NOT NULL",
                (job_id, type_),
            ).fetchall()
        return {(r[0], r[1]) for r in rows}


class QueueFull(Exception):
    def __init__(self, queued: int, promised: int, needed: int, limit: int):
        self.queued, self.promised, self.needed, self.limit = queued, promised, needed, limit
        taken = f"{queued} queued" + (f" and {promised} promised to batches still arriving" if promised else "")
        super().__init__(f"The queue has room for {limit} jobs ({taken}); this needs room for {needed}.")


# A batch that stopped arriving (its client died half-way) stops holding room after this long.
BATCH_ROOM_S = 600.0


def _check_room(db: sqlite3.Connection, spec: ResolvedJob, limit: int, now: float) -> None:
    queued = db.execute("SELECT COUNT(*) FROM jobs WHERE state = ?", (JobState.QUEUED,)).fetchone()[0]
    rows = db.execute(
        "SELECT json_extract(spec, '$.batch'), MAX(json_extract(spec, '$.batch_jobs')), COUNT(*), MAX(created) "
        "FROM jobs WHERE json_extract(spec, '$.batch') IS NOT NULL GROUP BY json_extract(spec, '$.batch')"
    ).fetchall()
    promised, stored = 0, 0
    for batch, total, count, newest in rows:
        if batch == spec.batch:
            stored = count
        elif total and count < total and newest > now - BATCH_ROOM_S:
            promised += total - count
    needed = max(1, (spec.batch_jobs or 1) - stored) if spec.batch else 1
    if queued + promised + needed > limit:
        raise QueueFull(queued, promised, needed, limit)


class _Transaction:
    def __init__(self, db: sqlite3.Connection, lock: threading.RLock):
        self.db, self.lock = db, lock

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise
        return self.db

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.lock.release()


def job_summary_fields(job: JobRecord) -> dict[str, Any]:
    """The spec fields a listing shows."""
    spec = job.spec
    return {
        "input": spec.input, "prompt": spec.prompt, "frames": spec.frames, "output": spec.output,
        "batch": spec.batch, "name": spec.name, "row": spec.row, "n_frames": spec.n_frames,
        "variants": spec.variants,
    }
