"""A job's life on the wire: the states a job is in and the stages its progress names.

One spelling for the server, the panel and the command line (docs/protocol.md has
the tables). Both are `str` enums: a member *is* its wire string, so msgpack, JSON and
SQLite store and send exactly the text they did before, and a plain string read back
from the wire compares equal to its member. Standard library only, so the editor-side
code and `bridge/wire/summary.py` may use it without msgpack.
"""

from __future__ import annotations

import enum


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """The job has ended: nothing more happens to it unless it is retried."""
        return self in TERMINAL_STATES


# A job in one of these has sent its last event (done / failed / cancelled).
TERMINAL_STATES: frozenset[JobState] = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})
# `retry` queues a job again only from these (a done job's outputs are kept instead).
RETRYABLE_STATES: frozenset[JobState] = frozenset({JobState.FAILED, JobState.CANCELLED})


class Stage(enum.StrEnum):
    """Progress stages, declared in the order a job goes through them (the documented order)."""

    START = "start"
    LOAD = "load"
    ENCODE = "encode"
    INVERSION = "inversion"
    EDIT = "edit"
    DECODE = "decode"
    WRITE = "write"


# The documented order: a job's stages only move forward (STAGE_ORDER.index compares them).
STAGE_ORDER: tuple[Stage, ...] = tuple(Stage)
