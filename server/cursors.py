"""Cursors: what the front still owes one client, read from the store as it can be sent.

Replay and live delivery are the same thing here: a subscription is a position in the
job's stored event log. The front asks a cursor for its next message, tries to send
it without blocking, and advances only when ZeroMQ took it. A slow client therefore
holds back only its own cursor (no event is dropped at a full send queue, and nothing
piles up in memory); when it drains, the cursor carries on from the store.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from bridge.wire import protocol as p
from server.journal import Journal
from server.store import EventRecord

_BATCH = 32


def _payload(data: bytes | np.ndarray) -> Any:
    # A contiguous array goes out as its own buffer (zero-copy); bytes as they are.
    return np.ascontiguousarray(data) if isinstance(data, np.ndarray) else data


def event_message(journal: Journal, ev: EventRecord, rid: int | None, *, frames: bool = True,
                  proxies: bool = True) -> list:
    body = dict(ev.body)
    blobs: list = []
    if ev.type in (p.Frame.TYPE, p.Proxy.TYPE):
        # `omitted` is always sent (docs/protocol.md: every documented field is present).
        wanted = frames if ev.type == p.Frame.TYPE else proxies
        blob = ev.blob if wanted else None
        body["omitted"] = blob is None
        if blob is not None:
            blobs.append(_payload(journal.read_blob(ev.job_id, blob)))
    return p.encode_raw(ev.type, body, rid=rid, job=ev.job_id, seq=ev.seq, blobs=blobs)


class Cursor:
    """Base: `peek()` the next message (None: nothing to send now), `advance()` once sent."""

    finished = False
    rid: int | None = None  # the request this cursor answers

    def peek(self) -> list | None:
        raise NotImplementedError

    def advance(self) -> None:
        raise NotImplementedError


class EventCursor(Cursor):
    """Follows one job's events from `next_seq` up to and including its terminal event."""

    def __init__(self, journal: Journal, job_id: str, rid: int | None, next_seq: int,
                 frames: bool = True, proxies: bool = True):
        self.journal = journal
        self.job_id = job_id
        self.rid = rid
        self.next_seq = next_seq
        self.frames = frames
        self.proxies = proxies
        self._buffer: deque[EventRecord] = deque()
        self._pending: list | None = None

    def peek(self) -> list | None:
        if self._pending is None:
            if not self._buffer:
                self._buffer.extend(self.journal.store.events(self.job_id, self.next_seq, _BATCH))
            if not self._buffer:
                return None
            self._pending = event_message(self.journal, self._buffer[0], self.rid,
                                          frames=self.frames, proxies=self.proxies)
        return self._pending

    def advance(self) -> None:
        ev = self._buffer.popleft()
        self._pending = None
        self.next_seq = ev.seq + 1
        if ev.type in p.TERMINAL_EVENTS:
            self.finished = True


class ListCursor(Cursor):
    """A fixed list of stored events (a `fetch` of frames), then one closing message."""

    def __init__(self, journal: Journal, events: list[EventRecord], rid: int | None, closing: list):
        self.journal = journal
        self.rid = rid
        self._events = deque(events)
        self._closing = closing
        self._pending: list | None = None

    def peek(self) -> list | None:
        if self._pending is None:
            if self._events:
                self._pending = event_message(self.journal, self._events[0], self.rid)
            else:
                self._pending = self._closing
        return self._pending

    def advance(self) -> None:
        self._pending = None
        if self._events:
            self._events.popleft()
        else:
            self.finished = True
