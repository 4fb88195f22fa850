"""A client of the TokenFlow server: submit, watch, cancel, fetch; reconnects on its own.

The server's traffic becomes a small set of typed events (`JobEvent`, kinds in
`EventKind`), the way an editor panel wants it: progress, proxy, frame, and one of
done / failed / cancelled at the end. `events()` survives a dropped connection or a
restarted server: it reconnects, re-subscribes from the last sequence number it saw
plus one, and the caller sees every event exactly once, in order.

Standard library, pyzmq and msgpack only (numpy and Pillow are imported when an image
is asked for), so it loads inside an editor's Python.
"""

from __future__ import annotations

import enum
import io
import itertools
import os
import time
import zlib
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import zmq

from bridge.wire import local
from bridge.wire import protocol as p

SERVER_ENV = "TOKENFLOW_SERVER"
# Room left in an upload message for its header: parts are at most max_upload_message_bytes minus this.
UPLOAD_HEADER_ROOM = 65536


class ClientError(Exception):
    """Base of what this client raises."""


class ServerError(ClientError):
    """The server answered with an error reply."""

    def __init__(self, code: str, message: str, hint: str = "", field: str | None = None):
        super().__init__(f"{message} {hint}".strip())
        self.code, self.message, self.hint, self.field = code, message, hint, field


class ConnectionLost(ClientError):
    """No answer from the server within the time allowed."""


class AccessRefused(ConnectionLost):
    """The server refused this client's CurveZMQ key (or this client brought none)."""


class EventKind(str, enum.Enum):
    ACCEPTED = "accepted"
    REQUEUED = "requeued"
    PROGRESS = "progress"
    PROXY = "proxy"
    FRAME = "frame"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class JobEvent:
    kind: EventKind
    job: str
    seq: int
    body: p.Body  # the protocol dataclass of this kind (p.Progress, p.Proxy, ...)
    data: Any = None  # the binary frame: encoded proxy image, or raw pixels

    @classmethod
    def of(cls, env: p.Envelope) -> JobEvent:
        """The event an envelope of a job's stream carries (its first binary frame as `data`)."""
        data = env.blobs[0] if env.blobs else None
        return cls(EventKind(env.type), env.job or "", env.seq or 0, env.body, data)

    @property
    def terminal(self) -> bool:
        return self.kind in (EventKind.DONE, EventKind.FAILED, EventKind.CANCELLED)

    def image(self):
        """The pixels as an HxWxC numpy array (frames: zero-copy view; proxies: decoded)."""
        import numpy as np

        if self.data is None:
            raise ValueError(f"{self.kind.value} event {self.seq} carries no image")
        if self.kind is EventKind.FRAME:
            assert isinstance(self.body, p.Frame)  # the kind is the body's type
            return np.frombuffer(self.data, dtype=np.dtype(self.body.dtype)).reshape(self.body.shape)
        if self.kind is EventKind.PROXY:
            assert isinstance(self.body, p.Proxy)
            if self.body.format == "raw":  # uint8 RGB rows, top row first (docs/protocol.md)
                return np.frombuffer(self.data, dtype=np.uint8).reshape(self.body.height, self.body.width, 3)
            from PIL import Image

            return np.asarray(Image.open(io.BytesIO(bytes(self.data))).convert("RGB"))
        raise ValueError(f"{self.kind.value} events carry no image")


@dataclass(frozen=True)
class CurveKeys:
    """CurveZMQ keys for a server bound off loopback (see docs/protocol.md, Security)."""

    server_public: bytes
    public: bytes
    secret: bytes

    @classmethod
    def local(cls) -> CurveKeys | None:
        """The user's own keys for a loopback TCP server (bridge/wire/local.py), when the server made them."""
        keys = local.local_keys()
        return cls.from_files(keys.server_public, keys.client_secret) if keys.exist() else None

    @classmethod
    def from_options(cls, server_key: str | os.PathLike | None,
                     client_secret_key: str | os.PathLike | None) -> CurveKeys | None:
        """The keys a command's --server-key/--client-key name: both or neither (None)."""
        if not (server_key or client_secret_key):
            return None
        if not (server_key and client_secret_key):
            raise ClientError("--server-key and --client-key go together.")
        return cls.from_files(server_key, client_secret_key)

    @classmethod
    def from_files(cls, server_key: str | os.PathLike, client_secret_key: str | os.PathLike) -> CurveKeys:
        import zmq.auth

        server_public, _ = zmq.auth.load_certificate(str(server_key))
        public, secret = zmq.auth.load_certificate(str(client_secret_key))
        if secret is None:
            raise ClientError(f"{client_secret_key} holds no secret key: pass the client's .key_secret file.")
        return cls(server_public, public, secret)


class _SessionLost(Exception):
    """The server stopped answering, restarted, or forgot this client."""


ReplyBody = TypeVar("ReplyBody", bound=p.Body)


def default_endpoint() -> str:
    """$TOKENFLOW_SERVER, else the user's own server (a private ipc:// socket; bridge/wire/local.py)."""
    return os.environ.get(SERVER_ENV) or local.default_endpoint()


# Handshake failures: the server refused our key, or wants keys we do not have.
_HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                     | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


class Client:
    """One connection (DEALER socket). Not thread-safe: use one Client per thread."""

    def __init__(self, endpoint: str | None = None, *, timeout: float = 10.0, reconnect_timeout: float = 60.0,
                 keys: CurveKeys | None = None, name: str = "tokenflow-client", context: zmq.Context | None = None):
        self.endpoint = endpoint or default_endpoint()
        self.timeout = timeout
        self.reconnect_timeout = reconnect_timeout
        self.keys = keys
        self.name = name
        self._context = context or zmq.Context.instance()
        self._socket: zmq.Socket | None = None
        self._monitor: zmq.Socket | None = None
        self._refused: str | None = None  # why the last handshake failed, if it did
        self._rids = itertools.count(1)
        self._active: set[int] = set()  # request ids whose messages we keep
        self._inbox: dict[int, deque[p.Envelope]] = defaultdict(deque)
        self._last_heard = 0.0
        self._last_sent = 0.0
        self._session_lost = False
        self.welcome: p.Welcome | None = None
        self.heartbeat_s = p.HEARTBEAT_INTERVAL_S
        self.liveness = p.HEARTBEAT_LIVENESS

    # --- connection ---

    def connect(self) -> p.Welcome:
        """Open the socket and say hello. Raises ConnectionLost with advice if nobody answers."""
        self._open()
        return self.hello()

    def close(self) -> None:
        if self._socket is not None:
            if self._monitor is not None:
                try:
                    self._socket.disable_monitor()
                except zmq.ZMQError:
                    pass  # the context is terminating: closing both sockets is all that is left to do
                self._monitor.close(linger=0)
                self._monitor = None
            self._socket.close(linger=0)
            self._socket = None

    def __enter__(self) -> Client:
        self.connect()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _open(self) -> zmq.Socket:
        self.close()
        s = self._context.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        # Messages wait for a connection instead of being dropped while none is up.
        s.setsockopt(zmq.IMMEDIATE, 0)
        # A send never blocks past the timeout (it would wait forever for a server that
        # refuses our key: the connection never comes up).
        s.setsockopt(zmq.SNDTIMEO, max(1, int(self.timeout * 1000)))
        keys = self.keys
        if keys is None and local.is_loopback_tcp(self.endpoint):
            keys = CurveKeys.local()  # the user's own loopback server proves the user with these
        if keys is not None:
            s.curve_serverkey = keys.server_public
            s.curve_publickey = keys.public
            s.curve_secretkey = keys.secret
        self._monitor = s.get_monitor_socket(_HANDSHAKE_FAILED)
        self._refused = None
        s.connect(self.endpoint)
        self._socket = s
        self._inbox.clear()
        self._active.clear()
        self._last_heard = time.monotonic()
        self._session_lost = False
        return s

    def _no_answer(self, seconds: float) -> ConnectionLost:
        """`seconds`: how long this client actually waited."""
        self._check_handshake()
        if self._refused:
            return AccessRefused(
                f"The TokenFlow server at {self.endpoint} refused this client ({self._refused}); gave up after "
                f"{seconds:.1f} s. Give the server's public key and an allowed client key (--server-key, "
                "--client-key), or ask whoever runs the server to add this client's public key to its clients/ "
                "folder."
            )
        return ConnectionLost(
            f"No answer from the TokenFlow server at {self.endpoint} after waiting {seconds:.1f} s. "
            "Is it running? Start it with `tokenflow serve`, or point to it with --server ENDPOINT "
            f"(or ${SERVER_ENV})."
        )

    def _check_handshake(self) -> None:
        """Read the socket monitor: a refused handshake ends the wait at once."""
        if self._monitor is None:
            return
        from zmq.utils.monitor import recv_monitor_message

        while self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)
            if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                self._refused = "its CurveZMQ authentication refused this client's key"
            elif event["event"] & _HANDSHAKE_FAILED:
                self._refused = ("the security handshake failed: the server needs CurveZMQ keys this client "
                                 "does not have, or the keys do not match")

    def _reconnect(self) -> None:
        """Fresh socket and hello, retried until reconnect_timeout (the Lazy Pirate way)."""
        started = time.monotonic()
        deadline = started + self.reconnect_timeout
        delay = 0.2
        while True:
            self._open()
            try:
                self.hello(timeout=min(self.timeout, max(0.5, deadline - time.monotonic())))
                return
            except AccessRefused:
                raise
            except ConnectionLost:
                if time.monotonic() >= deadline:
                    raise self._no_answer(time.monotonic() - started) from None
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 2.0)

    # --- messages ---

    def _send(self, body: p.Body, job: str | None = None, keep: bool = True, blobs: tuple = ()) -> int:
        socket = self._socket if self._socket is not None else self._open()
        rid = next(self._rids)
        if keep:
            self._active.add(rid)
        started = time.monotonic()
        try:
            socket.send_multipart(p.encode(p.Envelope(body, rid=rid, job=job, blobs=blobs)), copy=False)
        except zmq.Again:  # SNDTIMEO: the connection never came up
            self._active.discard(rid)
            self._check_handshake()
            raise self._no_answer(time.monotonic() - started) from None
        self._last_sent = time.monotonic()
        return rid

    def _forget(self, rid: int) -> None:
        self._active.discard(rid)
        self._inbox.pop(rid, None)

    def _pump(self, timeout: float, wake: Any = None) -> None:
        """Receive for up to `timeout` s, heartbeating; raise _SessionLost when the server is gone.
        `wake`: anything zmq.Poller can poll (a socket, a file descriptor) that ends the wait early."""
        now = time.monotonic()
        if now - self._last_sent >= self.heartbeat_s:
            self._send(p.Heartbeat(), keep=False)
        silence = self.heartbeat_s * self.liveness
        wait = max(0.0, min(timeout, self.heartbeat_s, self._last_heard + silence - now))
        self._check_handshake()
        if self._refused:
            raise _SessionLost("refused")
        socket = self._socket
        assert socket is not None, "every wait follows a _send, which opens the socket"
        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        if self._monitor is not None:
            poller.register(self._monitor, zmq.POLLIN)  # a refused handshake wakes the wait
        if wake is not None:
            poller.register(wake, zmq.POLLIN)
        if socket in dict(poller.poll(int(wait * 1000))):
            while True:
                try:
                    frames = socket.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                self._last_heard = time.monotonic()
                self._dispatch(frames)
        if time.monotonic() - self._last_heard > silence:
            raise _SessionLost("silence")

    def _dispatch(self, frames: list) -> None:
        parts = [frames[0].bytes, *(f.buffer for f in frames[1:])]
        try:
            env = p.decode(parts, strict=False, max_bytes=None)
        except p.ProtocolError:
            # A newer server may send an event type this client does not know: keep its
            # place in the sequence (as a body-less envelope) so it reads as skipped, not lost.
            header = _peek_header(parts[0])
            rid, seq = header.get("rid"), header.get("seq")
            if rid in self._active and isinstance(seq, int):
                self._inbox[rid].append(p.Envelope(p.Body(), rid=rid, job=header.get("job"), seq=seq))
            return
        if isinstance(env.body, p.Heartbeat):
            if env.body.known is False or (
                self.welcome is not None and env.body.server_id and env.body.server_id != self.welcome.server_id
            ):
                self._session_lost = True
            return
        if env.rid in self._active:
            self._inbox[env.rid].append(env)

    def _next(self, rid: int, deadline: float | None, watch_session: bool = False) -> p.Envelope:
        """The next message for `rid`; raises _SessionLost (silence; with watch_session also a
        restarted server or a forgotten session), or ConnectionLost at the deadline."""
        started = time.monotonic()
        while True:
            box = self._inbox.get(rid)
            if box:
                return box.popleft()
            if watch_session and self._session_lost:
                raise _SessionLost("session")
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise self._no_answer(time.monotonic() - started)
            self._pump(self.heartbeat_s if remaining is None else remaining)

    def request(self, body: p.Body, job: str | None = None, timeout: float | None = None) -> p.Envelope:
        """Send a request and wait for its reply; error replies raise ServerError."""
        # Silence counts from now: a client idle for minutes has heard nothing because it asked nothing.
        self._last_heard = max(self._last_heard, time.monotonic())
        timeout = self.timeout if timeout is None else timeout
        started = time.monotonic()
        rid = self._send(body, job)
        try:
            env = self._next(rid, started + timeout)
        except _SessionLost:
            raise self._no_answer(time.monotonic() - started) from None
        finally:
            self._forget(rid)
        if isinstance(env.body, p.Error):
            raise ServerError(env.body.code, env.body.message, env.body.hint, env.body.field)
        return env

    # --- many requests in flight on one socket (the panel's link: ui/link.py) ---

    def send(self, body: p.Body, job: str | None = None) -> int:
        """Send a request without waiting; what answers it comes from `receive` under the returned rid."""
        return self._send(body, job)

    def receive(self, timeout: float, wake: Any = None) -> list[p.Envelope]:
        """Wait up to `timeout` s (less when `wake` is readable) and return what arrived for the
        requests `send` made, in order per rid; heartbeats are sent and read here. Raises
        ConnectionLost when the server has been silent past its liveness window or refused our key."""
        try:
            self._pump(timeout, wake)
        except _SessionLost:
            raise self._no_answer(self.heartbeat_s * self.liveness) from None
        arrived = [env for box in self._inbox.values() for env in box]
        self._inbox.clear()
        return arrived

    def forget(self, rid: int) -> None:
        """Drop whatever still arrives for `rid` (a request answered, a stream ended or abandoned)."""
        self._forget(rid)

    @property
    def session_lost(self) -> bool:
        """The server restarted or forgot this client: subscriptions must be made again."""
        return self._session_lost
    def ask(self, body: p.Body, reply: type[ReplyBody], job: str | None = None,
            timeout: float | None = None) -> ReplyBody:
        """`request`, for the body of the reply type the request expects."""
        return _expect(self.request(body, job=job, timeout=timeout), body, reply)

    # --- requests ---

    def hello(self, timeout: float | None = None) -> p.Welcome:
        if self._socket is None:
            self._open()
        welcome = self.ask(p.Hello(client=self.name), p.Welcome, timeout=timeout)
        self.welcome = welcome
        self.heartbeat_s = welcome.limits.heartbeat_s
        self.liveness = welcome.limits.heartbeat_liveness
        self._session_lost = False
        return welcome

    def submit(self, spec: p.JobSpec) -> JobEvent:
        """Queue a job; returns its `accepted` event (job id, queue position)."""
        request = p.Submit(spec=spec)
        env = self.request(request)
        _expect(env, request, p.Accepted)
        return _event(env)

    # --- uploaded frames (docs/protocol.md, "Jobs whose source is uploaded frames") ---

    def upload_open(self, upload: str, *, width: int, height: int, channels: int, dtype: str, frame_rate: str,
                    first: int, count: int) -> p.UploadState:
        """Describe an upload, or find it again: the state lists the frames the server holds."""
        body = p.UploadOpen(upload=upload, width=width, height=height, channels=channels, dtype=dtype,
                            frame_rate=frame_rate, first=first, count=count)
        return self.ask(body, p.UploadState)

    def upload_frames(self, upload: str, frame: Callable[[int], Any], numbers: Iterable[int], *,
                      max_in_flight: int = 4) -> p.UploadState | None:
        """Send frames `numbers` (host frame numbers); `frame(n)` gives frame n's pixels, C order,
        rows top to bottom (bytes, memoryview, or a numpy array). Frames larger than a message go in
        parts; small ones share messages. Returns the last `upload_state` (None if nothing was sent)."""
        if self.welcome is None:
            self.hello()
        assert self.welcome is not None
        room = self.welcome.limits.max_upload_message_bytes - UPLOAD_HEADER_ROOM
        in_flight: deque[int] = deque()
        state: p.UploadState | None = None
        parts: list[p.UploadPart] = []
        blobs: list[memoryview] = []

        def flush() -> None:
            nonlocal state
            in_flight.append(self._send(p.UploadFrames(upload=upload, parts=list(parts)), blobs=tuple(blobs)))
            parts.clear()
            blobs.clear()
            while len(in_flight) >= max_in_flight:  # the replies pace the upload (docs/protocol.md)
                state = self._upload_reply(in_flight.popleft())

        for n in numbers:
            pixels = memoryview(frame(n)).cast("B")
            for offset in range(0, max(1, len(pixels)), room):
                piece = pixels[offset:offset + room]
                if parts and sum(len(b) for b in blobs) + len(piece) > room:
                    flush()
                parts.append(p.UploadPart(frame=n, offset=offset, end=offset + len(piece) == len(pixels),
                                          crc32=zlib.crc32(piece)))
                blobs.append(piece)
        if parts:
            flush()
        while in_flight:
            state = self._upload_reply(in_flight.popleft())
        return state

    def _upload_reply(self, rid: int) -> p.UploadState:
        try:
            env = self._next(rid, time.monotonic() + self.timeout)
        except _SessionLost:
            raise self._no_answer(self.heartbeat_s * self.liveness) from None
        finally:
            self._forget(rid)
        if isinstance(env.body, p.Error):
            raise ServerError(env.body.code, env.body.message, env.body.hint, env.body.field)
        return _expect(env, p.UploadFrames(upload="", parts=[]), p.UploadState)

    def upload(self, upload: str, frame: Callable[[int], Any], *, width: int, height: int, channels: int,
               dtype: str, frame_rate: str, first: int, count: int) -> p.UploadState:
        """Open (or resume) an upload and send every frame the server lacks; a client that lost its
        connection calls it again and only the missing frames go. Returns the final state.
        A matte is uploaded the same way (`channels` 1, 3 or 4) and named in a job's
        `params.matte` by `bridge.wire.matte_ref.upload_matte(upload)`."""
        state = self.upload_open(upload, width=width, height=height, channels=channels, dtype=dtype,
                                 frame_rate=frame_rate, first=first, count=count)
        held = {n for lo, hi in state.have for n in range(lo, hi + 1)}
        missing = [n for n in range(first, first + count) if n not in held]
        return self.upload_frames(upload, frame, missing) or state

    def cancel(self, job: str) -> p.JobInfo:
        return self.ask(p.Cancel(), p.JobStatus, job=job).info

    def status(self, job: str) -> p.JobInfo:
        return self.ask(p.Status(), p.JobStatus, job=job).info

    def list_jobs(self, states: list[str] | None = None, limit: int = 100, batch: str | None = None) -> list[p.JobInfo]:
        """Up to `limit` jobs, newest first, read page by page (the server bounds each page)."""
        jobs: list[p.JobInfo] = []
        while len(jobs) < limit:
            page = self.ask(p.ListJobs(states=states, limit=min(limit - len(jobs), p.MAX_LIST),
                                       offset=len(jobs), batch=batch), p.JobList)
            jobs.extend(page.jobs)
            if not page.more or not page.jobs:
                break
        return jobs

    def stats(self) -> p.Stats:
        """What the server holds for its clients now (queued bytes, subscriptions; docs/protocol.md)."""
        return self.ask(p.Stats(), p.Stats)

    # --- the render queue (docs/queue.md) ---

    def check(self, spec: p.JobSpec) -> str:
        """Validate a spec exactly as `submit` would, queueing nothing; returns the output path it would get."""
        return self.ask(p.Submit(spec=spec, dry_run=True), p.Ok).detail

    def retry(self, job: str) -> p.JobInfo:
        return self.ask(p.Retry(), p.JobStatus, job=job).info

    def queue(self, action: str | None = None) -> p.QueueState:
        """The queue's state; action "pause" or "resume" changes it first."""
        return self.ask(p.QueueControl(action=action), p.QueueState)

    def files(self, job: str) -> p.Files:
        return self.ask(p.ListFiles(), p.Files, job=job)

    def read(self, job: str, name: str, offset: int, length: int = p.MAX_CHUNK_BYTES) -> tuple[p.Chunk, bytes]:
        env = self.request(p.Read(name=name, offset=offset, length=length), job=job)
        return _chunk(env), bytes(env.blobs[0])

    def read_stream(self, job: str, name: str, offset: int, size: int, chunk: int = p.MAX_CHUNK_BYTES,
                    window: int = 4) -> Iterator[tuple[p.Chunk, bytes]]:
        """The chunks of file `name` from `offset` to `size`, in order, with up to `window` `read`
        requests in flight: over a link with latency the next chunks are already on their way
        (each request still asks for one bounded chunk). Raises ConnectionLost when the server
        stops answering; ask again from the last byte received to resume."""
        pending: deque[int] = deque()
        ahead = offset
        try:
            while pending or ahead < size:
                while len(pending) < window and ahead < size:
                    length = min(chunk, size - ahead)
                    pending.append(self._send(p.Read(name=name, offset=ahead, length=length), job=job))
                    ahead += length
                self._last_heard = max(self._last_heard, time.monotonic())
                try:
                    env = self._next(pending[0], time.monotonic() + self.timeout)
                except _SessionLost:
                    raise self._no_answer(self.timeout) from None
                self._forget(pending.popleft())
                if isinstance(env.body, p.Error):
                    raise ServerError(env.body.code, env.body.message, env.body.hint, env.body.field)
                yield _chunk(env), bytes(env.blobs[0])
        finally:
            for rid in pending:  # left early: late replies are dropped on arrival
                self._forget(rid)

    def reconnect(self) -> None:
        """A fresh socket and hello, retried for up to reconnect_timeout (after ConnectionLost)."""
        self._reconnect()

    def reorder(self, job: str, *, priority: int | None = None, position: int | None = None) -> p.JobInfo:
        return self.ask(p.Reorder(priority=priority, position=position), p.JobStatus, job=job).info

    def probe(self, path: str) -> dict:
        """Facts about a media file on the server's machine (see `tokenflow probe`)."""
        return self.ask(p.Probe(input=path), p.Clip).facts

    def outputs(self, job: str) -> list[str]:
        return self.ask(p.Fetch(what="outputs"), p.Outputs, job=job).paths

    def fetch_frames(self, job: str, first: int | None = None, last: int | None = None,
                     variant: int = 0) -> Iterator[JobEvent]:
        """The job's stored full-resolution frames in [first, last] (source numbers), of one of its
        prompts (`variant` 0 = params.prompt, v = params.variants[v-1])."""
        rid = self._send(p.Fetch(what="frames", first=first, last=last, variant=variant), job=job)
        try:
            while True:
                started = time.monotonic()
                try:
                    env = self._next(rid, started + self.timeout)
                except _SessionLost:
                    raise self._no_answer(time.monotonic() - started) from None
                if isinstance(env.body, p.Error):
                    raise ServerError(env.body.code, env.body.message, env.body.hint, env.body.field)
                if isinstance(env.body, p.FetchEnd):
                    return
                yield _event(env)
        finally:
            self._forget(rid)

    def events(self, job: str, from_seq: int = 1, *, frames: bool = True, proxies: bool = True) -> Iterator[JobEvent]:
        """The job's events from `from_seq` until its end, across reconnects, each exactly once."""
        last = from_seq - 1
        rid = None
        try:
            while True:
                try:
                    if rid is None:
                        rid = self._send(p.Subscribe(from_seq=last + 1, frames=frames, proxies=proxies), job=job)
                    env = self._next(rid, None, watch_session=True)
                except _SessionLost:
                    if self._refused:
                        raise self._no_answer(0.0) from None
                    if rid is not None:
                        self._forget(rid)
                    rid = None
                    self._reconnect()
                    continue
                if isinstance(env.body, p.Error):
                    raise ServerError(env.body.code, env.body.message, env.body.hint, env.body.field)
                order = in_order(env, last)
                if order is Order.IGNORE:
                    continue
                if order is Order.GAP:  # ask again from the first missing event
                    self._forget(rid)
                    rid = None
                    continue
                last += 1
                if order is Order.UNKNOWN:
                    continue
                event = _event(env)
                yield event
                if event.terminal:
                    self._forget(rid)
                    rid = None
                    return
        finally:
            if rid is not None:  # left early: tell the server to stop sending
                self._forget(rid)
                try:
                    self._send(p.Unsubscribe(), job=job, keep=False)
                except zmq.ZMQError:
                    pass

    def wait(self, job: str, from_seq: int = 1) -> JobEvent:
        """Block until the job ends; returns its terminal event (no pixels are transferred)."""
        for event in self.events(job, from_seq, frames=False, proxies=False):
            if event.terminal:
                return event
        raise ClientError("the event stream ended without a terminal event")


class Order(enum.Enum):
    """Where an arriving message stands in a job's event sequence (see `in_order`)."""

    IGNORE = "ignore"  # not an event (a `subscribed` reply), or one already delivered
    GAP = "gap"  # events are missing before it: subscribe again from the first missing one
    UNKNOWN = "unknown"  # the next event, of a type this client does not know: counted, not delivered
    NEXT = "next"  # the next event: deliver it


def in_order(env: p.Envelope, last: int) -> Order:
    """The one rule every follower of a job (`Client.events`, the panel's link) applies: each
    event exactly once and in order, after `last`, the seq of the last one delivered."""
    if isinstance(env.body, p.Subscribed) or env.seq is None or env.seq <= last:
        return Order.IGNORE  # `<= last`: a replay overlapping what arrived before
    if env.seq > last + 1:
        return Order.GAP
    return Order.NEXT if env.body.TYPE else Order.UNKNOWN


def _event(env: p.Envelope) -> JobEvent:
    return JobEvent.of(env)


def _chunk(env: p.Envelope) -> p.Chunk:
    if not isinstance(env.body, p.Chunk):
        raise ClientError(f"The server answered a read with {env.type!r}, not 'chunk': "
                          "are the server and this client the same TokenFlow version?")
    return env.body


def _expect(env: p.Envelope, request: p.Body, reply: type[ReplyBody]) -> ReplyBody:
    """The reply's body, which must be of the type `request` expects."""
    if not isinstance(env.body, reply):
        raise ClientError(f"The server answered a {request.TYPE} request with {env.type!r}, not {reply.TYPE!r}: "
                          "are the server and this client the same TokenFlow version?")
    return env.body


def _peek_header(raw: bytes) -> dict:
    import msgpack

    try:
        header = msgpack.unpackb(raw, raw=False)
    except Exception:
        return {}
    return header if isinstance(header, dict) else {}


def absolute(path: str | os.PathLike) -> str:
    """Paths go to the server absolute: it has no idea of this process's working directory."""
    text = os.fspath(path)
    trailing = text.endswith(("/", os.sep))
    out = str(Path(text).expanduser().absolute())
    return out + os.sep if trailing and not out.endswith(os.sep) else out
