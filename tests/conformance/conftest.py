"""A client written from docs/protocol.md alone: raw ZeroMQ + msgpack, no bridge.wire.client.

The tests read the document's tables (`doc_table`) and drive a real `tokenflow serve`
with this client, so a change to the server or to the document without the other fails.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import msgpack
import pytest
import zmq

from tests.e2e.conftest import ServeProcess

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def doc_text() -> str:
    return DOC.read_text()


def doc_section(title: str) -> str:
    """The text of the section whose heading is `title` (up to the next heading of any level)."""
    text = doc_text()
    m = re.search(rf"^#+ {re.escape(title)}\s*$", text, re.M)
    assert m, f"docs/protocol.md has no section {title!r}"
    rest = text[m.end():]
    nxt = re.search(r"^#+ ", rest, re.M)
    return rest[: nxt.start()] if nxt else rest


def parse_table(text: str, after: str | None = None) -> list[dict[str, str]]:
    """The first markdown table in `text` (after the line containing `after`), as dicts by header."""
    if after is not None:
        text = text[text.index(after):]
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in _split_row(line)])
    header, body = rows[0], rows[2:]
    return [dict(zip(header, r)) for r in body]


def _split_row(line: str) -> list[str]:
    # Cells are separated by "|" outside backticks (a cell may quote a "|" in code).
    cells, cur, code = [], "", False
    for ch in line.strip()[1:-1]:
        if ch == "`":
            code = not code
        if ch == "|" and not code:
            cells.append(cur)
            cur = ""
        else:
            cur += ch
    cells.append(cur)
    return cells


def names_in(cell: str) -> set[str]:
    """Field names a table cell lists: backticked identifiers (quoted values and dotted paths are not names)."""
    while True:  # what a parenthesis says is about values, not more fields
        stripped = re.sub(r"\([^()]*\)", "", cell)
        if stripped == cell:
            break
        cell = stripped
    return {n for n in re.findall(r"`([^`]+)`", cell) if re.fullmatch(r"[a-z_]+", n)}


def unquote(cell: str) -> str:
    return cell.strip().strip("`")


class Raw:
    """A DEALER socket speaking the documented wire."""

    def __init__(self, endpoint: str, context: zmq.Context):
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)
        self.rid = 0
        self.last_sent = 0.0
        self.pending: list[tuple[dict, list[bytes]]] = []

    def close(self) -> None:
        self.socket.close(linger=0)

    def send_frames(self, frames: list[bytes]) -> None:
        self.socket.send_multipart(frames)

    def send(self, type_: str, body: dict | None = None, *, job: str | None = None, rid: int | None = -1,
             blobs: tuple = (), **header) -> int:
        """rid -1: the next request id; None: no rid."""
        if rid == -1:
            self.rid += 1
            rid = self.rid
        h = {"v": 1, "type": type_, "rid": rid, "job": job, "seq": None, "body": body or {}}
        h.update(header)
        self.send_frames([msgpack.packb(h, use_bin_type=True), *blobs])
        self.last_sent = time.monotonic()
        return rid

    def recv(self, timeout: float = 20.0) -> tuple[dict, list[bytes]]:
        if self.pending:
            return self.pending.pop(0)
        if not self.socket.poll(int(timeout * 1000)):
            raise TimeoutError(f"nothing from the server in {timeout} s")
        frames = self.socket.recv_multipart()
        return msgpack.unpackb(frames[0], raw=False), frames[1:]

    def reply(self, rid: int, timeout: float = 20.0) -> tuple[dict, list[bytes]]:
        """The next message for `rid`; others are kept for later."""
        for i, (header, _blobs) in enumerate(self.pending):
            if header.get("rid") == rid:
                return self.pending.pop(i)
        deadline = time.monotonic() + timeout
        kept = []
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no reply to rid {rid} in {timeout} s")
                if time.monotonic() - self.last_sent >= 1.0:  # Heartbeats: a waiting client shows it is alive
                    self.send("heartbeat", rid=None)
                if not self.socket.poll(int(min(left, 0.5) * 1000)):
                    continue
                frames = self.socket.recv_multipart()
                header = msgpack.unpackb(frames[0], raw=False)
                if header.get("rid") == rid:
                    return header, frames[1:]
                if header["type"] == "heartbeat" and header.get("rid") is None:
                    continue
                kept.append((header, frames[1:]))
        finally:
            self.pending.extend(kept)

    def request(self, type_: str, body: dict | None = None, **kw) -> dict:
        header, _ = self.reply(self.send(type_, body, **kw))
        return header

    def events(self, rid: int, timeout: float = 120.0):
        """(header, blobs) for `rid` until a terminal event or an `unsubscribed`."""
        while True:
            header, blobs = self.reply(rid, timeout)
            yield header, blobs
            if header["type"] in ("done", "failed", "cancelled", "unsubscribed", "error"):
                return


@pytest.fixture(scope="module")
def context():
    ctx = zmq.Context()
    yield ctx
    ctx.term()


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir):
    s = ServeProcess(tmp_path_factory.mktemp("conformance"), tiny_model_dir).start()
    yield s
    s.stop()


@pytest.fixture
def raw(server, context):
    clients = []

    def make() -> Raw:
        c = Raw(server.endpoint, context)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()
