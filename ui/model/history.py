"""Every version made for a clip, kept across panel and server restarts (SQLite).

The panel records a version when it submits a job and updates it as the job goes;
when it connects it reconciles what it kept with the server's job list, so a job that
finished while the panel was closed shows up finished. The thumbnail is stored with
the row, so the history still shows pictures when the server has cleaned the job up.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from bridge.wire import protocol as p

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    job_id TEXT PRIMARY KEY,
    clip TEXT NOT NULL,
    first INTEGER NOT NULL,
    last INTEGER NOT NULL,
    prompt TEXT NOT NULL,
    params TEXT NOT NULL,
    model TEXT,
    endpoint TEXT NOT NULL,
    state TEXT NOT NULL,
    outputs TEXT NOT NULL DEFAULT '[]',
    message TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    updated REAL NOT NULL,
    thumbnail BLOB
);
CREATE INDEX IF NOT EXISTS versions_clip ON versions (clip, created);
"""


@dataclass
class Version:
    job_id: str
    clip: str  # absolute media path
    first: int
    last: int
    prompt: str
    params: dict[str, Any]  # what was sent, by EditParams name
    model: str | None
    endpoint: str
    state: str
    outputs: list[str] = field(default_factory=list)
    message: str = ""
    created: float = 0.0
    updated: float = 0.0
    thumbnail: bytes | None = None

    @property
    def terminal(self) -> bool:
        return self.state in p.TERMINAL_STATES

    @property
    def summary(self) -> str:
        pr = self.params
        bits = [f"frames {self.first}-{self.last}", f"seed {pr.get('seed', 0)}"]
        if "steps" in pr:
            bits.append(f"{pr['steps']} steps")
        if "guidance" in pr:
            bits.append(f"cfg {pr['guidance']}")
        if pr.get("short_side"):  # 0: the model's own size, nothing to say
            bits.append(f"{pr['short_side']} px")
        return " · ".join(bits)


class HistoryStore:
    """The SQLite file; one connection, used from the GUI thread only."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(str(path))
        self.db.row_factory = sqlite3.Row
        with self.db:
            self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def add(self, v: Version) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO versions (job_id, clip, first, last, prompt, params, model, endpoint, state, "
                "outputs, message, created, updated, thumbnail) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (v.job_id, v.clip, v.first, v.last, v.prompt, json.dumps(v.params), v.model, v.endpoint, v.state,
                 json.dumps(v.outputs), v.message, v.created, v.updated or v.created, v.thumbnail))

    def update(self, job_id: str, **values: Any) -> bool:
        if not values:
            return False
        if "outputs" in values:
            values["outputs"] = json.dumps(values["outputs"])
        values["updated"] = time.time()
        cols = ", ".join(f"{k} = ?" for k in values)
        with self.db:
            cur = self.db.execute(f"UPDATE versions SET {cols} WHERE job_id = ?", (*values.values(), job_id))
        return cur.rowcount > 0

    def get(self, job_id: str) -> Version | None:
        row = self.db.execute("SELECT * FROM versions WHERE job_id = ?", (job_id,)).fetchone()
        return _version(row) if row else None

    def for_clip(self, clip: str) -> list[Version]:
        rows = self.db.execute("SELECT * FROM versions WHERE clip = ? ORDER BY created DESC", (clip,)).fetchall()
        return [_version(r) for r in rows]

    def all(self) -> list[Version]:
        return [_version(r) for r in self.db.execute("SELECT * FROM versions ORDER BY created DESC").fetchall()]

    def unfinished(self) -> list[Version]:
        terminal = [s for s in p.JobState if s.terminal]
        rows = self.db.execute(f"SELECT * FROM versions WHERE state NOT IN ({','.join('?' * len(terminal))})",
                               terminal).fetchall()
        return [_version(r) for r in rows]


def _version(row: sqlite3.Row) -> Version:
    return Version(job_id=row["job_id"], clip=row["clip"], first=row["first"], last=row["last"], prompt=row["prompt"],
                   params=json.loads(row["params"]), model=row["model"], endpoint=row["endpoint"], state=row["state"],
                   outputs=json.loads(row["outputs"]), message=row["message"], created=row["created"],
                   updated=row["updated"], thumbnail=row["thumbnail"])


class HistoryModel(QObject):
    """The history as observable state: `changed(clip)` when a clip's versions change."""

    changed = Signal(str)

    def __init__(self, store: HistoryStore, parent: QObject | None = None):
        super().__init__(parent)
        self.store = store

    def record(self, version: Version) -> None:
        self.store.add(version)
        self.changed.emit(version.clip)

    def versions(self, clip: str) -> list[Version]:
        return self.store.for_clip(clip)

    def get(self, job_id: str) -> Version | None:
        return self.store.get(job_id)

    def set_state(self, job_id: str, state: str, outputs: list[str] | None = None, message: str | None = None) -> None:
        v = self.store.get(job_id)
        if v is None:
            return
        values: dict[str, Any] = {}
        if v.state != state:
            values["state"] = state
        if outputs is not None and outputs != v.outputs:
            values["outputs"] = outputs
        if message is not None and message != v.message:
            values["message"] = message
        if self.store.update(job_id, **values):
            self.changed.emit(v.clip)

    def set_thumbnail(self, job_id: str, png: bytes) -> None:
        v = self.store.get(job_id)
        if v is not None and self.store.update(job_id, thumbnail=png):
            self.changed.emit(v.clip)

    def reconcile(self, infos: list[p.JobInfo]) -> list[str]:
        """Bring unfinished versions up to date from the server's list; returns the jobs not in it."""
        by_id = {i.id: i for i in infos}
        missing = []
        for v in self.store.unfinished():
            info = by_id.get(v.job_id)
            if info is None:
                missing.append(v.job_id)
                continue
            message = None
            if info.error:
                message = " ".join(str(info.error.get(k, "")) for k in ("message", "hint")).strip()
            self.set_state(v.job_id, info.state, list(info.outputs) or None, message)
        return missing
