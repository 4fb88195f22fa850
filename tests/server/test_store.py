"""The job store: accept atomically, events numbered without gaps, survive reopening."""

from __future__ import annotations

import sqlite3

import pytest

from bridge.wire import protocol as p
from server.store import JobStore, StoreError
from tests.server.jobs import resolved_job


def make(tmp_path) -> JobStore:
    return JobStore(tmp_path / "jobs.sqlite3")


def spec(prompt="x"):
    return resolved_job(input="/a.mp4", params={"prompt": prompt}, frames="0:3")


def test_create_job_writes_job_and_accepted_event(tmp_path):
    st = make(tmp_path)
    job, ev = st.create_job("j1", spec(), priority=0, client_token="t1", position=0)
    assert job.state == "queued" and job.last_seq == 1 and job.spec == spec()
    assert ev.seq == 1 and ev.type == "accepted"
    assert [e.type for e in st.events("j1")] == ["accepted"]
    assert st.by_token("t1").id == "j1"
    with pytest.raises(sqlite3.IntegrityError):
        st.create_job("j2", spec(), priority=0, client_token="t1", position=0)
    assert st.get("j2") is None  # the failed transaction left nothing behind


def test_events_are_numbered_and_terminal_event_sets_state(tmp_path):
    st = make(tmp_path)
    st.create_job("j", spec(), priority=0, client_token=None, position=0)
    st.start_attempt("j")
    st.append_event("j", p.Progress(stage=p.Stage.EDIT, step=1))
    st.append_event("j", p.Frame(frame=7), blob="frames/00000007.npy", frame=7)
    st.append_event("j", p.Done(outputs=["/o.mp4"]), state=p.JobState.DONE, outputs=["/o.mp4"])
    job = st.get("j")
    assert job is not None
    assert job.state == "done" and job.outputs == ["/o.mp4"] and job.last_seq == 4 and job.attempts == 1
    assert job.progress is not None and (job.progress["stage"], job.progress["step"]) == ("edit", 1)
    assert [e.seq for e in st.events("j")] == [1, 2, 3, 4]
    assert [e.seq for e in st.events("j", from_seq=3, limit=1)] == [3]
    assert [e.frame for e in st.frame_events("j", 5, 9)] == [7]
    assert st.frame_events("j", 8, None) == []
    assert st.sent_frames("j", "frame") == {(0, 7)}  # (variant, frame)
    with pytest.raises(StoreError):
        st.append_event("nope", p.Progress())


def test_reopen_and_requeue_interrupted(tmp_path):
    st = make(tmp_path)
    st.create_job("a", spec(), priority=0, client_token=None, position=0)
    st.create_job("b", spec(), priority=0, client_token=None, position=1)
    st.start_attempt("a")
    st.close()
    st = make(tmp_path)  # as after kill -9: "a" was running
    assert st.get("a").state == "running"
    assert st.requeue_interrupted() == ["a"]
    queued = sorted(st.queued(), key=lambda e: e[2])
    assert [q[0] for q in queued] == ["a", "b"]  # the interrupted job goes first
    assert st.count_queued() == 2


def test_list_and_save_queue(tmp_path):
    st = make(tmp_path)
    for j in "abc":
        st.create_job(j, spec(j), priority=0, client_token=None, position=0)
    assert [j.id for j in st.list_jobs()] == ["c", "b", "a"]
    st.start_attempt("a")
    assert [j.id for j in st.list_jobs(["queued"], limit=1)] == ["c"]
    st.save_queue([("c", 3, 0), ("b", 0, 1)])
    assert st.get("c").priority == 3 and st.get("c").queue_order == 0
