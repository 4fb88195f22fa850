"""Every version made for a clip, kept across panel and server restarts (SQLite).

The panel records a version when it submits a job and updates it as the job goes;
when it connects it reconciles what it kept with the server's job list, so a job that
finished while the panel was closed shows up finished. The thumbnail is stored with
the row, so the history still shows pictures when the server has cleaned the job up.

A job with several prompts (`params.variants`) is one row, and one entry per prompt in the
history: each with its own prompt, thumbnail and outputs (the `variant_extras` table), named by
an entry key (`entry_key`: the job id for its first prompt, `JOB#v` for the others), so Show,
Make again and Export act on one variant.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from bridge.wire import protocol as p
from bridge.wire.naming import outputs_by_prompt

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
CREATE TABLE IF NOT EXISTS variant_extras (
    job_id TEXT NOT NULL,
    variant INTEGER NOT NULL,
    outputs TEXT,
    thumbnail BLOB,
    PRIMARY KEY (job_id, variant)
);
"""

_KEY_MARK = "#"  # job ids are the server's hex names: "#" never occurs in one


def entry_key(job_id: str, variant: int = 0) -> str:
    """The history entry of one prompt of a job: the job id itself for its first prompt."""
    return job_id if variant == 0 else f"{job_id}{_KEY_MARK}{variant}"


def split_key(key: str) -> tuple[str, int]:
    """(job id, variant) of an entry key (a plain job id is its first prompt)."""
    job, mark, variant = key.rpartition(_KEY_MARK)
    if mark and variant.isdigit():
        return job, int(variant)
    return key, 0


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
    variant: int = 0  # which of the job's prompts this entry is (0: params.prompt, v: params.variants[v-1])

    @property
    def terminal(self) -> bool:
        return self.state in p.TERMINAL_STATES

    @property
    def key(self) -> str:
        return entry_key(self.job_id, self.variant)

    @property
    def prompts(self) -> list[str]:
        """Every prompt of the job, in variant order."""
        return [str(self.params.get("prompt", "")), *(str(v) for v in self.params.get("variants", ()))]

    @property
    def count(self) -> int:
        return len(self.prompts)

    @property
    def variant_params(self) -> dict[str, Any]:
        """This entry as a one-prompt edit: what Show puts in the form and Make again submits."""
        values = {k: v for k, v in self.params.items() if k != "variants"}
        values["prompt"] = self.prompts[self.variant] if self.variant < self.count else self.prompt
        return values

    @property
    def variant_text(self) -> str:
        """'variant 2 of 3' for one prompt of several; '' for a one-prompt job."""
        return f"variant {self.variant + 1} of {self.count}" if self.count > 1 else ""

    @property
    def summary(self) -> str:
        pr = self.params
        bits = [self.variant_text] if self.variant_text else []
        bits += [f"frames {self.first}-{self.last}", f"seed {pr.get('seed', 0)}"]
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

    def set_variant(self, job_id: str, variant: int, *, outputs: list[str] | None = None,
                    thumbnail: bytes | None = None) -> bool:
        """Keep one prompt's own outputs or thumbnail; True when something changed."""
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO variant_extras (job_id, variant) VALUES (?, ?)", (job_id, variant))
            changed = 0
            if outputs is not None:
                changed += self.db.execute(
                    "UPDATE variant_extras SET outputs = ? WHERE job_id = ? AND variant = ? "
                    "AND outputs IS NOT ?", (json.dumps(outputs), job_id, variant, json.dumps(outputs))).rowcount
            if thumbnail is not None:
                changed += self.db.execute("UPDATE variant_extras SET thumbnail = ? WHERE job_id = ? AND variant = ?",
                                           (thumbnail, job_id, variant)).rowcount
        return changed > 0

    def get(self, key: str) -> Version | None:
        """The entry of a key (`entry_key`): a plain job id is the job's first prompt."""
        job_id, variant = split_key(key)
        row = self.db.execute("SELECT * FROM versions WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        entries = self._entries(_version(row))
        return entries[variant] if variant < len(entries) else None

    def for_clip(self, clip: str) -> list[Version]:
        """The clip's entries, newest job first, a job's prompts in variant order."""
        rows = self.db.execute("SELECT * FROM versions WHERE clip = ? ORDER BY created DESC", (clip,)).fetchall()
        return [entry for r in rows for entry in self._entries(_version(r))]

    def _entries(self, job: Version) -> list[Version]:
        """One entry per prompt of a job row: its prompt, and its own outputs and thumbnail where kept."""
        if job.count == 1:
            return [job]  # a one-prompt job is its row, as it always was
        extras = {r["variant"]: r for r in self.db.execute(
            "SELECT * FROM variant_extras WHERE job_id = ?", (job.job_id,)).fetchall()}
        entries = []
        for variant, prompt in enumerate(job.prompts):
            extra = extras.get(variant)
            outputs = json.loads(extra["outputs"]) if extra is not None and extra["outputs"] is not None else []
            thumbnail = extra["thumbnail"] if extra is not None and extra["thumbnail"] is not None else None
            if variant == 0:  # the row's thumbnail is the first prompt's
                thumbnail = thumbnail or job.thumbnail
            entries.append(replace(job, variant=variant, prompt=prompt, outputs=outputs, thumbnail=thumbnail))
        return entries

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

    def get(self, key: str) -> Version | None:
        """The entry of a key (`entry_key`), or of a job id (its first prompt)."""
        return self.store.get(key)

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

    def set_thumbnail(self, job_id: str, png: bytes, variant: int = 0) -> None:
        v = self.store.get(job_id)
        if v is None:
            return
        changed = (self.store.update(job_id, thumbnail=png) if variant == 0
                   else self.store.set_variant(job_id, variant, thumbnail=png))
        if changed:
            self.changed.emit(v.clip)

    def set_variant_outputs(self, job_id: str, outputs: dict[int, list[str]]) -> None:
        """Each prompt's output files (the server's `done.variants`)."""
        v = self.store.get(job_id)
        if v is None or v.count == 1:
            return  # a one-prompt job's outputs are the row's
        changed = [self.store.set_variant(job_id, variant, outputs=files) for variant, files in outputs.items()]
        if any(changed):
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
            self.set_outputs_from_listing(info)
        return missing

    def set_outputs_from_listing(self, info: p.JobInfo) -> None:
        """Each prompt's files of a several-prompt job that finished while no `done` event reached
        the panel (it was closed): split from the listing's flat outputs."""
        if not info.variants or info.state != p.JobState.DONE:
            return
        groups = outputs_by_prompt(info.outputs, 1 + len(info.variants))
        if groups is not None:
            self.set_variant_outputs(info.id, dict(enumerate(groups)))
