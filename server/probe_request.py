"""The `probe` request, answered off the front's thread.

Probing reads every timestamp of a file (bridge.media.probe with scan=True): for an
hour of footage on a network share that takes seconds, and the front must keep
answering everyone else meanwhile. So the probe runs on a small pool, the front gets
a cursor that has nothing to send until the probe is done, and the pool rings the
doorbell when it is, which wakes the front to send the reply.
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from bridge import media
from bridge.media.clip import clip_facts
from bridge.wire import protocol as p
from server.cursors import Cursor

_WORKERS = 2  # probes are I/O bound; two at once keep one slow disk from blocking the rest


def not_a_file(path: Path) -> tuple[str, str, str] | None:
    """(code, message, hint) when `path` is not a regular file: missing, a folder, a FIFO, a device."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return ("not_found", f"The input file {path} does not exist on the server.",
                "Check the path; the server reads it from its own disk.")
    if stat.S_ISREG(mode):
        return None
    kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "not a regular file")
    return ("media_error", f"{path} is {kind}, not a video file.", "Give the path of a video file.")


class ProbeError(Exception):
    def __init__(self, code: str, message: str, hint: str = ""):
        super().__init__(message)
        self.code, self.message, self.hint = code, message, hint


def probe_facts(path: str) -> dict:
    """The facts about the file at `path` (absolute, on this machine)."""
    if not path.strip():
        raise ProbeError("bad_field", "The probe names no file.", "Send the absolute path of a media file.")
    source = Path(path).expanduser()
    if not source.is_absolute():
        raise ProbeError("bad_field", f"The input path {path!r} is relative.", "Send an absolute path on the server's machine.")
    problem = not_a_file(source)
    if problem:
        raise ProbeError(*problem)
    try:
        return clip_facts(media.probe(source, scan=True))
    except media.MediaError as exc:
        raise ProbeError("media_error", str(exc)) from None


class ProbeCursor(Cursor):
    """Sends one reply (`clip` or `error`) once the probe's future is done."""

    def __init__(self, future: Future, rid: int | None):
        self.future = future
        self.rid = rid
        self._reply: list | None = None

    def peek(self) -> list | None:
        if self._reply is None:
            if not self.future.done():
                return None
            try:
                body: p.Body = p.Clip(facts=self.future.result())
            except ProbeError as exc:
                body = p.Error(code=exc.code, message=exc.message, hint=exc.hint, field="body.input")
            except Exception as exc:  # a bug costs this reply, never the front
                body = p.Error(code="internal_error", message=f"{type(exc).__name__}: {exc}",
                               hint="This is a server bug; the server log has details.")
            self._reply = p.encode(p.Envelope(body, rid=self.rid))
        return self._reply

    def advance(self) -> None:
        self.finished = True


class Prober:
    """The pool; created on the first probe, so a server that is never asked has no threads."""

    def __init__(self, wake: Callable[[], None]):
        self._wake = wake
        self._pool: ThreadPoolExecutor | None = None

    def start(self, path: str, rid: int | None) -> ProbeCursor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="probe")
        future = self._pool.submit(probe_facts, path)
        future.add_done_callback(lambda _: self._wake())
        return ProbeCursor(future, rid)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
