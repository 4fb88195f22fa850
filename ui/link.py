"""The panel's client layer: server traffic in, typed events out, never on the GUI thread.

`PanelLink` is what the session needs of it: requests that return at once, and Qt signals
with their outcomes. The tests hand the session a fake one; `ServerLink` is the real one.

`ServerLink` talks to the server through ONE connection: one network thread (`_Wire`), one
ZeroMQ context, one DEALER socket (a `bridge.wire.client.Client`). Every request (hello,
list, status, submit, cancel, reorder, retry, delete, queue state), every job the panel
follows (a `subscribe` each) and every frame fetch is in flight on it at once, told apart by
request id; events are routed to their job by that id, and carry the job id the session
reads. A handoff of 20 clips is one connection, not 21. After a lost connection or a
restarted server the thread connects again and subscribes each job from the first event it
has not seen, so the session sees every event once, in order (as `Client.events` does).

Stopping terminates the context: whatever ZeroMQ call the thread is in raises ETERM at once,
so closing the panel never waits for a server that does not answer. Pixels are decoded into
display-size QImages on the network thread, so the GUI thread only paints.
"""

from __future__ import annotations

import dataclasses
import enum
import queue
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zmq
from PySide6.QtCore import QObject, QThread, Signal

from bridge.wire import protocol as p
from bridge.wire.client import Client, ClientError, ConnectionLost, CurveKeys, JobEvent, Order, ServerError, in_order
from ui.images import encoded_to_qimage, rgb_to_qimage

LIST_INTERVAL_S = 1.0
RETRY_INTERVAL_S = 2.0
REQUEST_TIMEOUT_S = 5.0
ENGINE_POLL_S = 3.0
LIST_LIMIT = 200


class Request(str, enum.Enum):
    SUBMIT = "submit"
    CANCEL = "cancel"
    REORDER = "reorder"
    STATUS = "status"
    DELETE = "delete"
    RETRY = "retry"
    QUEUE = "queue"  # pause / resume the whole queue


@dataclass(frozen=True)
class Failure:
    """A request the server refused or could not be asked: what was tried and what to do."""

    action: str
    message: str
    job: str | None = None
    token: str | None = None


def plain_error(exc: Exception) -> str:
    if isinstance(exc, ServerError):
        return f"{exc.message} {exc.hint}".strip()
    return str(exc) or exc.__class__.__name__


def _strip(event: JobEvent) -> JobEvent:
    # The binary frame references a ZeroMQ message buffer; the QImage now holds the pixels.
    return dataclasses.replace(event, data=None) if event.data is not None else event


def event_image(event: JobEvent):
    """The display-size QImage an event carries, or None."""
    if event.data is None:
        return None
    if isinstance(event.body, p.Proxy) and not event.body.omitted:
        image = encoded_to_qimage(event.data)
        return None if image.isNull() else image
    if isinstance(event.body, p.Frame) and not event.body.omitted:
        return rgb_to_qimage(event.image())
    return None


class PanelLink(QObject):
    """What the session needs of its link to the server (the real one: `ServerLink`).

    Requests return at once; their outcomes arrive as the signals below, on the GUI thread.
    A test passes the session a subclass that records the requests and emits the signals.
    """

    connected = Signal(object)  # p.Welcome
    unreachable = Signal(str)  # what happened and what to do
    jobs_listed = Signal(list)  # list[p.JobInfo], newest first
    job_event = Signal(object, object)  # JobEvent (no buffer), QImage | None
    job_info = Signal(object)  # p.JobInfo after a cancel, reorder, retry or status
    submitted = Signal(str, object)  # client token, the accepted JobEvent
    deleted = Signal(str)  # job the server forgot (its outputs stay)
    queue_state = Signal(object)  # p.QueueState: paused, running, queued
    failed = Signal(object)  # Failure
    watch_ended = Signal(str, str)  # job, error ("" = reached its end)
    fetch_ended = Signal(str, str)  # job, error ("" = all its frames came)

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Promptly, with nothing left running; no signal follows."""
        raise NotImplementedError

    def submit(self, spec: p.JobSpec) -> str:
        """Queue a job; returns the client token that `submitted` (or `failed`) will carry."""
        raise NotImplementedError

    def cancel(self, job: str) -> None:
        raise NotImplementedError

    def reorder(self, job: str, position: int) -> None:
        raise NotImplementedError

    def status(self, job: str) -> None:
        raise NotImplementedError

    def retry(self, job: str) -> None:
        """Queue a failed or cancelled job again (same job, same output name)."""
        raise NotImplementedError

    def pause_queue(self, paused: bool) -> None:
        """Pause the queue (the running job finishes, nothing new starts) or resume it."""
        raise NotImplementedError

    def delete(self, job: str) -> None:
        """Have the server forget a job that is not running (its outputs are the user's and stay)."""
        raise NotImplementedError

    def watching(self, job: str) -> bool:
        raise NotImplementedError

    def watch(self, job: str, from_seq: int = 1) -> None:
        """Follow a job's events (previews, proxies, frames, its end) from `from_seq` until its end."""
        raise NotImplementedError

    def fetch_frames(self, job: str, variant: int = 0) -> None:
        """Bring a finished job's stored frames of one prompt back (as FRAME job events, `variant`
        set), then `fetch_ended`."""
        raise NotImplementedError


# --- the network thread ---


@dataclass
class _Watch:
    job: str
    last: int  # the last seq delivered
    rid: int | None = None  # its subscription, while one is open


@dataclass
class _Call:
    """A request in flight: what to do with its reply, and with its failure."""

    answer: Callable[[p.Envelope], None]
    fail: Callable[[ClientError], None]
    deadline: float


@dataclass
class _Listing:
    jobs: list[p.JobInfo] = field(default_factory=list)


class _Wire(QThread):
    """The one thread that owns the panel's ZeroMQ context and socket (see the module's doc)."""

    connected = Signal(object)
    unreachable = Signal(str)
    jobs_listed = Signal(list)
    job_event = Signal(object, object)
    job_info = Signal(object)
    submitted = Signal(str, object)
    deleted = Signal(str)
    queue_state = Signal(object)
    failed = Signal(object)
    watch_ended = Signal(str, str)
    fetch_ended = Signal(str, int, str)  # job, variant, error

    def __init__(self, endpoint: str, keys: CurveKeys | None, parent: QObject | None = None):
        super().__init__(parent)
        self.context = zmq.Context()
        self.client = Client(endpoint, timeout=REQUEST_TIMEOUT_S, keys=keys, name="tokenflow-panel",
                             context=self.context)
        self._stopping = False
        # GUI thread -> this thread: a queue, and a byte on a socket pair so a wait wakes at once.
        self._commands: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._wake_out, self._wake_in = socket.socketpair()
        self._wake_in.setblocking(False)
        self._wake_out.setblocking(False)
        # This thread's own state.
        self._calls: dict[int, _Call] = {}
        self._watches: dict[str, _Watch] = {}
        self._watch_rids: dict[int, _Watch] = {}
        self._fetches: dict[int, tuple[str, int]] = {}  # rid -> (job, variant)
        self._waiting_fetches: deque[tuple[str, int]] = deque()
        self._listing: _Listing | None = None
        self._next_list = 0.0
        self._queue_control = True
        self._welcome: p.Welcome | None = None

    # --- GUI thread ---

    def post(self, what: str, arg: Any = None) -> None:
        self._commands.put((what, arg))
        try:
            self._wake_out.send(b"\0")
        except OSError:
            pass  # the pair is full (the thread is already awake) or closed (stopping)

    def stop(self) -> None:
        self._stopping = True
        self.post("stop")
        self.context.term()  # any ZeroMQ call the thread is in raises ETERM; term returns once its socket closes
        self.wait()
        self._wake_out.close()
        self._wake_in.close()

    # --- this thread ---

    def run(self) -> None:
        try:
            while not self._stopping:
                try:
                    welcome = self.client.connect()  # a fresh socket each try: a dead peer's queue is dropped
                except ConnectionLost as exc:
                    self.unreachable.emit(str(exc))
                    self._refuse_for(RETRY_INTERVAL_S, "The server is not reachable: start it, or wait for it.")
                    continue
                self._on_welcome(welcome)
                self._serve()
        except zmq.ZMQError:
            pass  # the context was terminated: the panel is closing
        finally:
            self.client.close()

    def _refuse_for(self, seconds: float, message: str) -> None:
        """Wait before the next try, answering requests at once with why they cannot run
        (watches and fetches wait for the connection)."""
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            poller = zmq.Poller()
            poller.register(self._wake_in, zmq.POLLIN)
            poller.poll(int(max(0.0, deadline - time.monotonic()) * 1000))
            self._take_commands(refuse=message)

    def _serve(self) -> None:
        """Until the connection is lost (then `run` connects again) or the panel stops."""
        for watch in self._watches.values():
            watch.rid = None  # subscribed again below, from the first event not seen
        self._next_list = time.monotonic()
        asked_engine = time.monotonic()
        while not self._stopping:
            self._take_commands()
            self._start_streams()
            now = time.monotonic()
            if self._listing is None and now >= self._next_list:
                self._list_page(_Listing())
            if self._welcome is not None and self._welcome.engine_state != "ready" \
                    and now - asked_engine > ENGINE_POLL_S:
                # While the model loads, ask again now and then so the status bar sees it become ready.
                asked_engine = now
                self._call(p.Hello(client=self.client.name), None, self._on_hello, _ignore)
            waits = [self._next_list - now if self._listing is None else LIST_INTERVAL_S,
                     *(call.deadline - now for call in self._calls.values())]
            try:
                arrived = self.client.receive(max(0.0, min(waits)), wake=self._wake_in)
            except ConnectionLost as exc:
                self._lost(str(exc))
                return
            if arrived:
                # Replies queue behind the frames of every followed job on this one socket: while
                # anything arrives the server is answering, so no request counts as late yet.
                busy_until = time.monotonic() + REQUEST_TIMEOUT_S
                for call in self._calls.values():
                    call.deadline = max(call.deadline, busy_until)
            for env in arrived:
                self._route(env)
            if self.client.session_lost:
                # The server restarted or forgot this panel: what was asked died with it. Connect
                # again at once (no `unreachable`: it answers) and subscribe each job again.
                self._lost(None)
                return
            if any(call.deadline <= time.monotonic() for call in self._calls.values()):
                self._lost(f"No answer from the TokenFlow server at {self.client.endpoint} after waiting "
                           f"{REQUEST_TIMEOUT_S:.1f} s. Is it running? Start it with `tokenflow serve`.")
                return

    def _lost(self, message: str | None) -> None:
        """The connection is gone: fail what was asked, end the fetches; the watches carry on later."""
        failure = ConnectionLost(message or "The server restarted while this was asked: try again.")
        calls, self._calls = self._calls, {}
        for call in calls.values():
            call.fail(failure)
        for job, variant in self._fetches.values():
            self.fetch_ended.emit(job, variant, str(failure))
        self._fetches.clear()
        self._watch_rids.clear()
        self._listing = None
        if message is not None:
            self.unreachable.emit(message)

    # --- commands from the GUI thread ---

    def _take_commands(self, refuse: str | None = None) -> None:
        try:
            while self._wake_in.recv(4096):
                pass
        except OSError:
            pass  # nothing more to read
        while True:
            try:
                what, arg = self._commands.get_nowait()
            except queue.Empty:
                return
            if what == "stop":
                return
            if what == "watch":
                job, from_seq = arg
                self._watches.setdefault(job, _Watch(job, from_seq - 1))  # subscribed by _start_streams
            elif what == "fetch":
                self._waiting_fetches.append(arg)
            elif refuse is not None:
                kind, args = arg
                self.failed.emit(Failure(kind.value, refuse, args.get("job"), args.get("token")))
            else:
                self._ask(*arg)

    def _ask(self, kind: Request, args: dict[str, Any]) -> None:
        job: str | None = args.get("job")

        def fail(exc: ClientError) -> None:
            self.failed.emit(Failure(kind.value, plain_error(exc), job, args.get("token")))

        def info(env: p.Envelope) -> None:
            assert isinstance(env.body, p.JobStatus)
            self.job_info.emit(env.body.info)

        if kind is Request.SUBMIT:
            self._call(p.Submit(spec=args["spec"]), None,
                       lambda env: self.submitted.emit(args["token"], JobEvent.of(env)), fail)
        elif kind is Request.CANCEL:
            self._call(p.Cancel(), job, info, fail)
        elif kind is Request.REORDER:
            self._call(p.Reorder(position=args["position"]), job, info, fail)
        elif kind is Request.STATUS:
            self._call(p.Status(), job, info, fail)
        elif kind is Request.RETRY:
            self._call(p.Retry(), job, info, fail)
        elif kind is Request.QUEUE:
            self._call(p.QueueControl(action=args["action"]), None, lambda env: self.queue_state.emit(env.body),
                       fail)
        elif kind is Request.DELETE:
            self._call(p.Delete(), job, lambda env: self.deleted.emit(job), fail)

    def _call(self, body: p.Body, job: str | None, answer: Callable[[p.Envelope], None],
              fail: Callable[[ClientError], None]) -> None:
        rid = self.client.send(body, job)
        self._calls[rid] = _Call(answer, fail, time.monotonic() + REQUEST_TIMEOUT_S)

    # --- the periodic list (it doubles as the connection check) ---

    def _list_page(self, listing: _Listing) -> None:
        self._listing = listing
        want = LIST_LIMIT - len(listing.jobs)
        self._call(p.ListJobs(limit=min(want, p.MAX_LIST), offset=len(listing.jobs)), None,
                   self._on_page, self._list_failed)

    def _on_page(self, env: p.Envelope) -> None:
        listing = self._listing
        if listing is None:
            return
        page = env.body
        assert isinstance(page, p.JobList)
        listing.jobs.extend(page.jobs)
        if page.more and page.jobs and len(listing.jobs) < LIST_LIMIT:
            self._list_page(listing)
            return
        self.jobs_listed.emit(listing.jobs)
        if self._queue_control:
            self._call(p.QueueControl(), None, self._on_queue_state, self._list_failed)
        else:
            self._list_over()

    def _on_queue_state(self, env: p.Envelope) -> None:
        self._list_over()
        self.queue_state.emit(env.body)

    def _list_failed(self, exc: ClientError) -> None:
        # Not the user's request, so not the user's error; a lost connection says so by itself.
        if isinstance(exc, ServerError) and exc.code in ("bad_type", "unknown_type", "bad_request"):
            self._queue_control = False  # an older server: no queue pause/resume
        self._list_over()

    def _list_over(self) -> None:
        self._listing = None
        self._next_list = time.monotonic() + LIST_INTERVAL_S

    def _on_welcome(self, welcome: p.Welcome) -> None:
        self._welcome = welcome
        self.connected.emit(welcome)

    def _on_hello(self, env: p.Envelope) -> None:
        assert isinstance(env.body, p.Welcome)
        self._on_welcome(env.body)

    # --- replies and events, by request id ---

    def _route(self, env: p.Envelope) -> None:
        rid = env.rid
        if rid is None:
            return
        call = self._calls.pop(rid, None)
        if call is not None:
            self.client.forget(rid)
            if isinstance(env.body, p.Error):
                call.fail(ServerError(env.body.code, env.body.message, env.body.hint, env.body.field))
            else:
                call.answer(env)
        elif rid in self._watch_rids:
            self._on_watch_event(self._watch_rids[rid], env)
        elif rid in self._fetches:
            self._on_fetch_event(rid, env)

    def _subscribe(self, watch: _Watch) -> None:
        watch.rid = self.client.send(p.Subscribe(from_seq=watch.last + 1), watch.job)
        self._watch_rids[watch.rid] = watch

    def _end_watch(self, watch: _Watch, error: str) -> None:
        if watch.rid is not None:
            self._watch_rids.pop(watch.rid, None)
            self.client.forget(watch.rid)
        self._watches.pop(watch.job, None)
        self.watch_ended.emit(watch.job, error)

    def _on_watch_event(self, watch: _Watch, env: p.Envelope) -> None:
        """Each event once, in order (`in_order`, as `Client.events`); a gap asks again from the first missing."""
        if isinstance(env.body, p.Error):
            self._end_watch(watch, plain_error(ServerError(env.body.code, env.body.message, env.body.hint)))
            return
        order = in_order(env, watch.last)
        if order is Order.IGNORE:
            return
        if order is Order.GAP:
            if watch.rid is not None:
                self._watch_rids.pop(watch.rid, None)
                self.client.forget(watch.rid)
            self._subscribe(watch)
            return
        watch.last += 1
        if order is Order.UNKNOWN:
            return
        event = JobEvent.of(env)
        self.job_event.emit(_strip(event), event_image(event))
        if event.terminal:
            self._end_watch(watch, "")

    def _start_streams(self) -> None:
        """Open the subscriptions and fetches that wait, as many as the server allows one connection
        (the rest start as others end, in the order they were asked for)."""
        limits = self._welcome.limits if self._welcome is not None else p.Limits()
        waiting = (watch for watch in self._watches.values() if watch.rid is None)
        while len(self._watch_rids) < max(1, limits.max_subscriptions):
            watch = next(waiting, None)
            if watch is None:
                break
            self._subscribe(watch)
        while self._waiting_fetches and len(self._fetches) < max(1, limits.max_fetches):
            job, variant = self._waiting_fetches.popleft()
            self._fetches[self.client.send(p.Fetch(what="frames", variant=variant), job)] = (job, variant)

    def _on_fetch_event(self, rid: int, env: p.Envelope) -> None:
        job, variant = self._fetches[rid]
        if isinstance(env.body, (p.Error, p.FetchEnd)):
            del self._fetches[rid]
            self.client.forget(rid)
            error = "" if isinstance(env.body, p.FetchEnd) else plain_error(
                ServerError(env.body.code, env.body.message, env.body.hint))
            self.fetch_ended.emit(job, variant, error)
            return
        event = JobEvent.of(env)
        if isinstance(event.body, p.Frame) and event.body.variant != variant:
            # The frames answer the fetch that asked for this prompt's: say so on each.
            event = dataclasses.replace(event, body=dataclasses.replace(event.body, variant=variant))
        self.job_event.emit(_strip(event), event_image(event))


def _ignore(exc: ClientError) -> None:
    """A failed poll of the panel's own: the next one asks again; a lost connection says so by itself."""


_SIGNALS = ("connected", "unreachable", "jobs_listed", "job_event", "job_info", "submitted", "deleted", "queue_state",
            "failed")


class ServerLink(PanelLink):
    """The panel's one connection to a server: one thread, one context, one socket."""

    def __init__(self, endpoint: str, keys: CurveKeys | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.endpoint = endpoint
        self.keys = keys
        self._wire: _Wire | None = None
        self._watching: dict[str, int] = {}  # job -> from_seq asked (kept for a watch asked before start)
        self._fetching: set[tuple[str, int]] = set()  # (job, variant)

    # --- life ---

    def start(self) -> None:
        if self._wire is not None:
            return
        # A child of this link: `findChildren(QThread)` shows the one thread it runs.
        self._wire = _Wire(self.endpoint, self.keys, self)
        for name in _SIGNALS:
            getattr(self._wire, name).connect(getattr(self, name))
        self._wire.watch_ended.connect(self._watch_done)
        self._wire.fetch_ended.connect(self._fetch_done)
        for job, from_seq in self._watching.items():  # asked for before the start
            self._wire.post("watch", (job, from_seq))
        self._wire.start()

    def stop(self) -> None:
        if self._wire is not None:
            self._wire.stop()
            self._wire.setParent(None)
            self._wire = None
        self._watching.clear()
        self._fetching.clear()

    # --- requests ---

    def _ask(self, kind: Request, **args: Any) -> None:
        if self._wire is None:
            self.failed.emit(Failure(kind.value, "The panel is not connected to a server.", args.get("job"),
                                     args.get("token")))
            return
        self._wire.post("ask", (kind, args))

    def submit(self, spec: p.JobSpec) -> str:
        token = spec.client_token or uuid.uuid4().hex
        if spec.client_token != token:
            spec = dataclasses.replace(spec, client_token=token)
        self._ask(Request.SUBMIT, spec=spec, token=token)
        return token

    def cancel(self, job: str) -> None:
        self._ask(Request.CANCEL, job=job)

    def reorder(self, job: str, position: int) -> None:
        self._ask(Request.REORDER, job=job, position=max(0, position))

    def status(self, job: str) -> None:
        self._ask(Request.STATUS, job=job)

    def retry(self, job: str) -> None:
        self._ask(Request.RETRY, job=job)

    def pause_queue(self, paused: bool) -> None:
        self._ask(Request.QUEUE, action="pause" if paused else "resume")

    def delete(self, job: str) -> None:
        self._ask(Request.DELETE, job=job)

    # --- streams ---

    def watching(self, job: str) -> bool:
        return job in self._watching

    def watch(self, job: str, from_seq: int = 1) -> None:
        if job in self._watching:
            return
        self._watching[job] = from_seq
        if self._wire is not None:
            self._wire.post("watch", (job, from_seq))

    def _watch_done(self, job: str, error: str) -> None:
        self._watching.pop(job, None)
        self.watch_ended.emit(job, error)

    def fetch_frames(self, job: str, variant: int = 0) -> None:
        if (job, variant) in self._fetching or self._wire is None:
            return
        self._fetching.add((job, variant))
        self._wire.post("fetch", (job, variant))

    def _fetch_done(self, job: str, variant: int, error: str) -> None:
        self._fetching.discard((job, variant))
        self.fetch_ended.emit(job, error)
