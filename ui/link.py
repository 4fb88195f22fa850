"""The panel's client layer: server traffic in, typed events out, never on the GUI thread.

`bridge.wire.client.Client` blocks and is not thread-safe, so each piece of network work runs
in its own QThread with its own Client and its own ZeroMQ context:

- one *command* thread says hello, answers requests (submit, cancel, reorder, status)
  from a queue, and lists the server's jobs about once a second, which doubles as the
  connection check;
- one *watch* thread per job the panel follows, turning `Client.events()` (which already
  survives reconnects and replays what it missed) into `job_event` signals, with the
  pixels already decoded into display-size QImages so the GUI thread only paints;
- one *fetch* thread to bring back a finished job's stored frames.

Stopping a thread terminates its ZeroMQ context: whatever call it is blocked in raises
ETERM at once, so closing the panel never waits for a server that does not answer.
Everything the widgets see arrives as Qt signals, queued onto the GUI thread.
"""

from __future__ import annotations

import dataclasses
import enum
import queue
import time
import uuid
from dataclasses import dataclass
from typing import Any

import zmq
from PySide6.QtCore import QObject, QThread, Signal

from bridge.wire import protocol as p
from bridge.wire.client import Client, ClientError, ConnectionLost, CurveKeys, EventKind, JobEvent, ServerError
from ui.images import encoded_to_qimage, rgb_to_qimage

LIST_INTERVAL_S = 1.0
RETRY_INTERVAL_S = 2.0
REQUEST_TIMEOUT_S = 5.0
ENGINE_POLL_S = 3.0


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
    if event.kind is EventKind.PROXY and not event.body.omitted:
        image = encoded_to_qimage(event.data)
        return None if image.isNull() else image
    if event.kind is EventKind.FRAME and not event.body.omitted:
        return rgb_to_qimage(event.image())
    return None


class ClientThread(QThread):
    """A thread that talks to the server through its own ZeroMQ context.

    `stop()` terminates that context: every blocking call in `run()` then raises
    ZMQError (ETERM), `run()` closes its client and returns, and `term()` returns once
    the socket is closed. One shutdown path for every network thread of the panel.
    """

    def __init__(self, endpoint: str, keys: CurveKeys | None, parent: QObject | None = None):
        super().__init__(parent)
        self.endpoint, self.keys = endpoint, keys
        self.context = zmq.Context()
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True
        self._wake()
        self.context.term()
        self.wait()

    def _wake(self) -> None:
        """Unblock whatever `run()` waits on besides ZeroMQ (nothing, unless a subclass says so)."""


class _CommandThread(ClientThread):
    connected = Signal(object)  # p.Welcome
    unreachable = Signal(str)
    jobs_listed = Signal(list)
    submitted = Signal(str, object)  # client token, accepted JobEvent
    job_info = Signal(object)  # p.JobInfo
    deleted = Signal(str)
    queue_state = Signal(object)  # p.QueueState
    failed = Signal(object)  # Failure

    def __init__(self, endpoint: str, keys: CurveKeys | None, parent: QObject | None = None):
        super().__init__(endpoint, keys, parent)
        self.queue_control = True
        self.requests: queue.Queue[tuple[Request, dict[str, Any]] | None] = queue.Queue()

    def _wake(self) -> None:
        self.requests.put(None)  # run() may be waiting for the next request

    def run(self) -> None:
        client = Client(self.endpoint, timeout=REQUEST_TIMEOUT_S, keys=self.keys, name="tokenflow-panel",
                        context=self.context)
        try:
            while not self._stopping:
                try:
                    welcome = client.connect()  # a fresh socket each try: a dead peer's queue is dropped
                except ConnectionLost as exc:
                    self.unreachable.emit(str(exc))
                    self._refuse_until(RETRY_INTERVAL_S, "The server is not reachable: start it, or wait for it.")
                    continue
                self.connected.emit(welcome)
                self._serve(client)
        except zmq.ZMQError:
            pass  # the context was terminated: the panel is closing
        finally:
            client.close()

    def _refuse_until(self, seconds: float, message: str) -> None:
        """Wait before the next try, answering requests at once with why they cannot run."""
        try:
            item = self.requests.get(timeout=seconds)
        except queue.Empty:
            return
        if item is not None:
            kind, args = item
            self.failed.emit(Failure(kind.value, message, args.get("job"), args.get("token")))

    def _serve(self, client: Client) -> None:
        asked = time.monotonic()
        while not self._stopping:
            # While the model loads, ask again now and then so the status bar sees it become ready.
            if client.welcome is not None and client.welcome.engine_state != "ready" \
                    and time.monotonic() - asked > ENGINE_POLL_S:
                asked = time.monotonic()
                try:
                    self.connected.emit(client.hello())
                except ConnectionLost as exc:
                    self.unreachable.emit(str(exc))
                    return
            try:
                item = self.requests.get(timeout=LIST_INTERVAL_S)
            except queue.Empty:
                item = ("list", {})
            if item is None:
                return
            kind, args = item
            try:
                if kind == "list":
                    self.jobs_listed.emit(client.list_jobs(limit=200))
                    if self.queue_control:
                        self.queue_state.emit(client.queue())
                elif kind is Request.SUBMIT:
                    self.submitted.emit(args["token"], client.submit(args["spec"]))
                elif kind is Request.CANCEL:
                    self.job_info.emit(client.cancel(args["job"]))
                elif kind is Request.REORDER:
                    self.job_info.emit(client.reorder(args["job"], position=args["position"]))
                elif kind is Request.STATUS:
                    self.job_info.emit(client.status(args["job"]))
                elif kind is Request.RETRY:
                    self.job_info.emit(client.retry(args["job"]))
                elif kind is Request.QUEUE:
                    self.queue_state.emit(client.queue(args["action"]))
                elif kind is Request.DELETE:
                    client.request(p.Delete(), job=args["job"])
                    self.deleted.emit(args["job"])
            except ServerError as exc:
                if kind == "list" and exc.code in ("bad_type", "unknown_type", "bad_request"):
                    self.queue_control = False  # an older server: no queue pause/resume
                if kind != "list":
                    self.failed.emit(Failure(kind.value, plain_error(exc), args.get("job"), args.get("token")))
            except ConnectionLost as exc:
                if kind != "list":
                    self.failed.emit(Failure(kind.value, str(exc), args.get("job"), args.get("token")))
                self.unreachable.emit(str(exc))
                return


class _WatchThread(ClientThread):
    """Follows one job's events until its end (or until stopped)."""

    event = Signal(object, object)  # JobEvent without its buffer, QImage | None
    ended = Signal(str, str)  # job, error message ("" when the job reached its end)

    def __init__(self, endpoint: str, keys: CurveKeys | None, job: str, from_seq: int, parent: QObject | None = None):
        super().__init__(endpoint, keys, parent)
        self.job, self.from_seq = job, from_seq

    def run(self) -> None:
        # reconnect_timeout: a restarted server comes back when it comes back; stop() ends the wait.
        client = Client(self.endpoint, timeout=REQUEST_TIMEOUT_S, reconnect_timeout=365 * 24 * 3600.0,
                        keys=self.keys, name="tokenflow-panel-watch", context=self.context)
        error = ""
        try:
            while not self._stopping:
                try:
                    client.connect()
                    break
                except ConnectionLost:
                    QThread.msleep(int(RETRY_INTERVAL_S * 1000))
            for event in client.events(self.job, self.from_seq):
                self.event.emit(_strip(event), event_image(event))
        except zmq.ZMQError:
            return  # stopped
        except ClientError as exc:
            error = plain_error(exc)
        finally:
            client.close()
        self.ended.emit(self.job, error)


class _FetchThread(ClientThread):
    """A finished job's stored frames, as FRAME events (for a version reloaded from the history)."""

    event = Signal(object, object)
    ended = Signal(str, str)

    def __init__(self, endpoint: str, keys: CurveKeys | None, job: str, parent: QObject | None = None):
        super().__init__(endpoint, keys, parent)
        self.job = job

    def run(self) -> None:
        client = Client(self.endpoint, timeout=30.0, keys=self.keys, name="tokenflow-panel-fetch",
                        context=self.context)
        error = ""
        try:
            client.connect()
            for event in client.fetch_frames(self.job):
                self.event.emit(_strip(event), event_image(event))
        except zmq.ZMQError:
            return
        except ClientError as exc:
            error = plain_error(exc)
        finally:
            client.close()
        self.ended.emit(self.job, error)


class ServerLink(QObject):
    """The one object the rest of the panel talks to about the server.

    Requests return at once; their outcomes arrive as signals. Nothing here touches a widget.
    """

    connected = Signal(object)  # p.Welcome
    unreachable = Signal(str)  # what happened and what to do
    jobs_listed = Signal(list)  # list[p.JobInfo], newest first
    job_event = Signal(object, object)  # JobEvent (no buffer), QImage | None
    job_info = Signal(object)  # p.JobInfo after a cancel, reorder or status
    submitted = Signal(str, object)  # client token, the accepted JobEvent
    deleted = Signal(str)  # job the server forgot (its outputs stay)
    queue_state = Signal(object)  # p.QueueState: paused, running, queued
    failed = Signal(object)  # Failure
    watch_ended = Signal(str, str)  # job, error ("" = reached its end)
    fetch_ended = Signal(str, str)

    def __init__(self, endpoint: str, keys: CurveKeys | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.endpoint = endpoint
        self.keys = keys
        self._command: _CommandThread | None = None
        self._watches: dict[str, _WatchThread] = {}
        self._fetches: dict[str, _FetchThread] = {}

    # --- life ---

    def start(self) -> None:
        if self._command is not None:
            return
        self._command = _CommandThread(self.endpoint, self.keys)
        self._command.connected.connect(self.connected)
        self._command.unreachable.connect(self.unreachable)
        self._command.jobs_listed.connect(self.jobs_listed)
        self._command.submitted.connect(self.submitted)
        self._command.job_info.connect(self.job_info)
        self._command.deleted.connect(self.deleted)
        self._command.queue_state.connect(self.queue_state)
        self._command.failed.connect(self.failed)
        self._command.start()

    def stop(self) -> None:
        for thread in [*self._watches.values(), *self._fetches.values()]:
            thread.stop()
        self._watches.clear()
        self._fetches.clear()
        if self._command is not None:
            self._command.stop()
            self._command = None

    # --- requests ---

    def _ask(self, kind: Request, **args: Any) -> None:
        if self._command is None:
            self.failed.emit(Failure(kind.value, "The panel is not connected to a server.", args.get("job"),
                                     args.get("token")))
            return
        self._command.requests.put((kind, args))

    def submit(self, spec: p.JobSpec) -> str:
        """Queue a job; returns the client token that `submitted` (or `failed`) will carry."""
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
        """Queue a failed or cancelled job again (same job, same output name)."""
        self._ask(Request.RETRY, job=job)

    def pause_queue(self, paused: bool) -> None:
        """Pause the queue (the running job finishes, nothing new starts) or resume it."""
        self._ask(Request.QUEUE, action="pause" if paused else "resume")

    def delete(self, job: str) -> None:
        """Have the server forget a job that is not running (its outputs are the user's and stay)."""
        self._ask(Request.DELETE, job=job)

    # --- streams ---

    def watching(self, job: str) -> bool:
        return job in self._watches

    def watch(self, job: str, from_seq: int = 1) -> None:
        """Follow a job's events (previews, proxies, frames, its end) from `from_seq`."""
        if job in self._watches:
            return
        thread = _WatchThread(self.endpoint, self.keys, job, from_seq)
        thread.event.connect(self.job_event)
        thread.ended.connect(self._watch_done)
        self._watches[job] = thread
        thread.start()

    def _watch_done(self, job: str, error: str) -> None:
        thread = self._watches.pop(job, None)
        if thread is not None:
            thread.wait()
        self.watch_ended.emit(job, error)

    def fetch_frames(self, job: str) -> None:
        """Bring a finished job's frames back into the panel (as FRAME job events)."""
        if job in self._fetches:
            return
        thread = _FetchThread(self.endpoint, self.keys, job)
        thread.event.connect(self.job_event)
        thread.ended.connect(self._fetch_done)
        self._fetches[job] = thread
        thread.start()

    def _fetch_done(self, job: str, error: str) -> None:
        thread = self._fetches.pop(job, None)
        if thread is not None:
            thread.wait()
        self.fetch_ended.emit(job, error)

