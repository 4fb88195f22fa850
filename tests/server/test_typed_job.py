"""The server's typed edge: the resolved job the store keeps, and the events job_run builds."""

from __future__ import annotations

import dataclasses
import json
import time

from bridge.wire import protocol as p
from bridge.wire.client import EventKind, _event
from bridge.wire.protocol import STAGE_ORDER, JobState, Stage
from server.cursors import event_message
from server.journal import Journal
from server.resolved_job import LOCAL_OWNER, ResolvedJob, SourceInfo
from server.store import JobStore
from server.submission import resolve

# The keys of a job's stored spec, in the order servers have always written them; `owner`
# is added when the job is stored. A database written by an older server must keep opening.
STORED_KEYS = ["input", "frames", "first", "last", "n_frames", "output", "model", "params", "proxy_size",
               "proxy_format", "priority", "client_token", "overwrite", "preset", "start_number", "audio", "source",
               "destination", "name_template", "name", "batch", "row", "batch_jobs", "owner"]


def _recording(monkeypatch) -> list:
    """Every (event body, stored record) that goes through the journal."""
    seen = []
    append = Journal.append

    def record(self, job_id, event, **kw):
        stored = append(self, job_id, event, **kw)
        seen.append((event, stored))
        return stored

    monkeypatch.setattr(Journal, "append", record)
    return seen


def test_every_stage_the_server_emits_is_a_stage_in_the_documented_order(harness, monkeypatch):
    seen = _recording(monkeypatch)
    c = harness.client()
    assert c.wait(c.submit(harness.spec()).job).kind is EventKind.DONE
    stages = [event.stage for event, _ in seen if isinstance(event, p.Progress)]
    assert stages and all(isinstance(s, Stage) for s in stages)  # members, not look-alike strings
    assert [STAGE_ORDER.index(s) for s in stages] == sorted(STAGE_ORDER.index(s) for s in stages)
    assert {Stage.START, Stage.LOAD, Stage.ENCODE, Stage.EDIT, Stage.DECODE, Stage.WRITE} <= set(stages)


def test_an_event_job_run_builds_decodes_with_the_client_into_the_same_value(harness, monkeypatch):
    seen = _recording(monkeypatch)
    c = harness.client()
    accepted = c.submit(harness.spec(frames="10:13"))
    assert accepted.body == p.Accepted(position=0, state=JobState.QUEUED)
    assert c.wait(accepted.job).kind is EventKind.DONE
    # The journal tells the front before its append returns to the recorder, so the client
    # can hold `done` a moment before `seen` does.
    deadline = time.monotonic() + 10
    while not any(isinstance(event, p.Done) for event, _ in seen) and time.monotonic() < deadline:
        time.sleep(0.01)
    kinds = {type(event) for event, _ in seen}
    assert {p.Progress, p.Proxy, p.Frame, p.Done} <= kinds
    journal = harness.server.journal
    for event, stored in seen:
        frames = event_message(journal, stored, rid=1)
        decoded = _event(p.decode(frames, strict=False, max_bytes=None))
        assert decoded.kind is EventKind(event.TYPE) and decoded.seq == stored.seq
        assert decoded.body == event, event.TYPE


def test_a_resolved_job_round_trips_through_the_store(harness, tmp_path):
    resolved = resolve(harness.spec(frames="10:13", batch="b1", row=3), "j1", harness.config)
    assert isinstance(resolved.source, SourceInfo) and resolved.n_frames == 4
    resolved = dataclasses.replace(resolved, owner="someone")
    store = JobStore(tmp_path / "jobs.sqlite3")
    job, _ = store.create_job("j1", resolved, priority=0, client_token=None, position=0)
    assert job.spec == resolved and job.state is JobState.QUEUED
    raw = json.loads(store._db.execute("SELECT spec FROM jobs WHERE id = 'j1'").fetchone()[0])
    assert list(raw) == STORED_KEYS
    assert resolved.source is not None and raw["source"] == dataclasses.asdict(resolved.source)
    assert raw["params"] == resolved.params
    assert [j.id for j in store.list_batch("b1")] == ["j1"]  # queried by its stored key
    assert store.output_reserved(resolved.output)
    # A queued several-prompt job reserves each prompt's output, which its base name is not.
    several = dataclasses.replace(resolved, output="/out/look.mov",
                                  params={**resolved.params, "prompt": "red", "variants": ["blue"]})
    store.create_job("j2", several, priority=0, client_token=None, position=1)
    assert several.outputs == ["/out/look_red.mov", "/out/look_blue.mov"]
    assert store.output_reserved("/out/look_blue.mov") and store.output_reserved("/out/look_red.mov")
    assert not store.output_reserved("/out/look_green.mov")
    store.close()


def test_a_job_stored_by_an_older_server_reads_with_defaults(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    old = {"input": "/a.mp4", "frames": None, "first": 0, "last": 9, "n_frames": 10, "output": "/o.mp4",
           "model": "m", "params": {"prompt": "p"}, "proxy_size": 160, "proxy_format": "jpeg", "priority": 0,
           "client_token": None, "overwrite": False, "a_newer_servers_key": 1}
    store._db.execute("INSERT INTO jobs (id, created, updated, state, spec) VALUES ('old', 0, 0, 'done', ?)",
                      (json.dumps(old),))
    job = store.get("old")
    assert job is not None and job.state is JobState.DONE
    assert job.spec == ResolvedJob(input="/a.mp4", first=0, last=9, n_frames=10, output="/o.mp4", model="m",
                                   params={"prompt": "p"})
    assert job.spec.preset is None and job.spec.owner == LOCAL_OWNER and job.spec.prompt == "p"
    store.close()
