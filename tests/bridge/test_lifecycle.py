"""One spelling of a job's states and progress stages, the one docs/protocol.md documents."""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgpack

from bridge.wire import protocol as p
from bridge.wire import summary
from bridge.wire.lifecycle import RETRYABLE_STATES, STAGE_ORDER, TERMINAL_STATES, JobState, Stage

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def _documented_stages() -> list[str]:
    text = DOC.read_text()
    table = text[text.index("<!-- progress-stages: begin -->"):text.index("<!-- progress-stages: end -->")]
    return re.findall(r"^\| `(\w+)` \|", table, flags=re.MULTILINE)


def test_stages_are_the_documented_ones_in_the_documented_order():
    assert [s.value for s in STAGE_ORDER] == _documented_stages()


def test_job_states_are_the_documented_ones():
    text = DOC.read_text()
    line = text[text.index("JobInfo: `id`, `state` ("):].split(")")[0]
    assert [s.value for s in JobState] == re.findall(r"`(\w+)`", line)[2:]


def test_terminal_states_are_the_terminal_events():
    assert {s.value for s in TERMINAL_STATES} == set(p.TERMINAL_EVENTS)
    assert all(s.terminal == (s in TERMINAL_STATES) for s in JobState)
    assert RETRYABLE_STATES < TERMINAL_STATES and JobState.DONE not in RETRYABLE_STATES


def test_members_are_their_wire_strings():
    # What keeps the wire, the store and the summary files byte-for-byte as before.
    assert msgpack.packb([JobState.DONE, Stage.EDIT]) == msgpack.packb(["done", "edit"])
    assert json.dumps({"state": JobState.FAILED}) == '{"state": "failed"}'
    assert "cancelled" in TERMINAL_STATES and JobState("queued") is JobState.QUEUED


def test_the_batch_summary_counts_by_state():
    jobs = [{"id": str(i), "state": s} for i, s in enumerate(["done", "done", "failed", "cancelled", "running"])]
    built = summary.build("b", jobs)
    assert (built["succeeded"], built["failed"], built["cancelled"], built["finished"]) == (2, 1, 1, False)
    assert summary.build("b", jobs[:4])["finished"] is True
