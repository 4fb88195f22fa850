"""The ROUTER front: reads requests, answers, and drains each client's cursors.

It runs on its own thread and never waits on the GPU: the worker records events in the
store and rings the doorbell; the front wakes and sends what each cursor owes. All
sends are non-blocking, so one slow or dead client never stalls another.

Pieces of the ZeroMQ guide's reliability patterns, each small:
- `Peer.last_seen` + `expire_after`: a client silent for heartbeat_s * liveness is
  forgotten (its cursors dropped; its jobs go on);
- heartbeat replies carry the server id and whether the client was known, so a client
  notices a restarted server or a forgotten session and re-subscribes;
- cursors (server/cursors.py) are sequence-numbered replay: re-subscribing from the
  last seq seen + 1 loses nothing.

Memory is bounded in bytes, not messages: every large message handed to ZeroMQ is
tracked until libzmq has written it to the connection (pyzmq's MessageTracker), and a
client's streams pause while its queued bytes (or everyone's together) would pass the
budget in `Limits`; they resume from the store once the connection drains.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field

import zmq

from bridge.wire import protocol as p
from server.cursors import Cursor
from server.journal import Doorbell
from server.resolved_job import LOCAL_OWNER
from server.service import Outcome, Service, error_message

log = logging.getLogger("tokenflow.server")

_MAX_OUTBOX = 1000  # replies queued for a client that does not read them; beyond, it is dropped
_RECV_BURST = 256  # requests handled per wake before sending again (fairness)
# pyzmq copies frames smaller than this into libzmq (zmq.COPY_THRESHOLD); only larger ones
# are shared zero-copy and worth tracking. Small messages are bounded by SNDHWM's count.
_TRACK_FROM = 65536


@dataclass
class Peer:
    identity: bytes
    last_seen: float
    owner: str = LOCAL_OWNER  # who this client is (CurveZMQ user id, or the server's own user)
    outbox: deque = field(default_factory=deque)
    outbox_bytes: int = 0
    cursors: dict[tuple, Cursor] = field(default_factory=dict)
    # (tracker, bytes) of large messages ZeroMQ still holds for this client
    in_flight: deque = field(default_factory=deque)
    queued_bytes: int = 0


def message_bytes(frames: list) -> int:
    return sum(f.nbytes if hasattr(f, "nbytes") else len(f) for f in frames)


class Front:
    def __init__(self, socket: zmq.Socket, service: Service, doorbell: Doorbell, limits: p.Limits,
                 clock=time.monotonic, owner_of=None):
        self.socket = socket
        self.service = service
        self.doorbell = doorbell
        self.limits = limits
        self.clock = clock
        # frame -> owner string; None: every peer is the server's own user (ipc, plain loopback)
        self.owner_of = owner_of
        self.expire_after = limits.heartbeat_s * limits.heartbeat_liveness
        self.peers: dict[bytes, Peer] = {}
        self._orphans: deque = deque()  # in-flight messages of clients already forgotten
        self._orphan_bytes = 0
        self._stopping = False
        self.stats = {"received": 0, "rejected": 0, "peak_client_queued_bytes": 0, "peak_queued_bytes": 0}

    def stop(self) -> None:
        self._stopping = True
        self.doorbell.ring()

    def serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        poller.register(self.doorbell.fileno(), zmq.POLLIN)
        while not self._stopping:
            blocked = self.pump()
            # When some client's queue is full, look again soon; otherwise sleep until
            # a request, a doorbell ring, or the next housekeeping tick.
            timeout = 10 if blocked else int(self.limits.heartbeat_s * 500)
            ready = dict(poller.poll(timeout))
            if self.doorbell.fileno() in ready:
                self.doorbell.drain()
            for identity, outcome in self.service.collect():  # work finished off this thread (a submit's probe)
                self.deliver(identity, outcome)
            if self.socket in ready:
                self.receive()
            self.expire()

    # --- inbound ---

    def receive(self) -> None:
        for _ in range(_RECV_BURST):
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            owner = self.owner_of(frames[-1]) if self.owner_of is not None else LOCAL_OWNER
            self.handle([frames[0].bytes, *(f.buffer for f in frames[1:])], owner)

    def handle(self, frames: list, owner: str = LOCAL_OWNER) -> None:
        identity, parts = bytes(frames[0]), frames[1:]
        now = self.clock()
        peer = self.peers.get(identity)
        known = peer is not None
        if peer is None:
            if len(self.peers) >= self.limits.max_clients:
                self._send(Peer(identity, now), error_message(
                    None, "busy", f"The server already serves {self.limits.max_clients} clients.",
                    "Try again later, or close idle clients."))
                return
            peer = self.peers[identity] = Peer(identity, now, owner)
        peer.last_seen = now
        self.stats["received"] += 1
        try:
            env = p.decode(parts, allowed=p.REQUEST_TYPES, max_bytes=self.limits.max_request_bytes,
                           max_upload_bytes=self.limits.max_upload_message_bytes)
        except p.ProtocolError as exc:
            self.stats["rejected"] += 1
            self.queue(peer, error_message(exc.rid, exc.code, exc.message, _protocol_hint(exc), exc.field))
            return
        if env.type == p.Heartbeat.TYPE:
            reply = p.Heartbeat(server_id=self.service.server_id, known=known)
            self.queue(peer, p.encode(p.Envelope(reply, rid=env.rid)))
            return
        if env.type == p.Stats.TYPE:
            self.queue(peer, p.encode(p.Envelope(self.snapshot(), rid=env.rid)))
            return
        refusal = self._over_cap(peer, env)
        if refusal is not None:
            self.queue(peer, refusal)
            return
        try:
            outcome = self.service.handle(env, peer.owner, reply_to=peer.identity)
        except Exception as exc:  # a bug must cost one reply, never the server
            log.exception("request %s failed", env.type)
            outcome = Outcome([error_message(env.rid, "internal_error", f"{type(exc).__name__}: {exc}",
                                             "This is a server bug; the server log has details.", job=env.job)])
        self.apply(peer, outcome)

    def apply(self, peer: Peer, outcome: Outcome) -> None:
        for reply in outcome.replies:
            self.queue(peer, reply)
        if outcome.drop_key is not None:
            self._end_cursor(peer, outcome.drop_key, "unsubscribed")
        if outcome.cursor is not None:
            assert outcome.cursor_key is not None, "an outcome with a cursor names its key"
            self._end_cursor(peer, outcome.cursor_key, "replaced")
            peer.cursors[outcome.cursor_key] = outcome.cursor

    def deliver(self, identity: bytes, outcome: Outcome) -> None:
        """An outcome finished off the front's thread, for the client that asked (if still known)."""
        peer = self.peers.get(identity)
        if peer is not None:
            self.apply(peer, outcome)

    def _end_cursor(self, peer: Peer, key: tuple, reason: str) -> None:
        """A subscription ending before its job's end tells its rid so (docs/protocol.md)."""
        old = peer.cursors.pop(key, None)
        if old is not None and key[0] == "subscribe" and not old.finished:
            self.queue(peer, p.encode(p.Envelope(p.Unsubscribed(reason=reason), rid=old.rid, job=key[1])))

    def _over_cap(self, peer: Peer, env: p.Envelope) -> list | None:
        lim = self.limits
        if env.type == p.Subscribe.TYPE and ("subscribe", env.job) not in peer.cursors:
            if sum(1 for k in peer.cursors if k[0] == "subscribe") >= lim.max_subscriptions:
                return error_message(env.rid, "busy", f"This connection already has {lim.max_subscriptions} "
                                     "subscriptions.", "Unsubscribe from jobs you no longer watch.", job=env.job)
        if isinstance(env.body, p.Fetch) and env.body.what == "frames":
            if sum(1 for k in peer.cursors if k[0] == "fetch") >= lim.max_fetches:
                return error_message(env.rid, "busy", f"This connection already has {lim.max_fetches} frame "
                                     "fetches in progress.", "Read the frames of earlier fetches first.",
                                     job=env.job)
        return None

    def queue(self, peer: Peer, frames: list) -> None:
        size = message_bytes(frames)
        if len(peer.outbox) >= _MAX_OUTBOX or peer.outbox_bytes + size > self.limits.client_queue_bytes:
            log.warning("dropping client %s: it does not read its replies", peer.identity.hex())
            self._forget(peer)
            return
        peer.outbox.append(frames)
        peer.outbox_bytes += size

    # --- outbound ---

    def pump(self) -> bool:
        """Send what every client is owed, as far as each one's budget allows. True if any is blocked."""
        blocked = False
        self._settle_orphans()
        for peer in list(self.peers.values()):
            self._settle(peer)
        for peer in list(self.peers.values()):
            try:
                state = self._pump_peer(peer)
            except Exception:  # a stored frame deleted under a stream, or a bug: ends this client's streams only
                log.exception("streaming to client %s failed; its streams end with an error", peer.identity.hex())
                self._end_streams(peer)
                state = "idle"
            if state == "gone":
                self._forget(peer)
            elif state == "blocked":
                blocked = True
        return blocked

    def _pump_peer(self, peer: Peer) -> str:
        while peer.outbox:
            state = self._send(peer, peer.outbox[0])
            if state != "sent":
                return state
            peer.outbox_bytes -= message_bytes(peer.outbox.popleft())
        for key, cursor in list(peer.cursors.items()):
            while not cursor.finished:
                frames = cursor.peek()
                if frames is None:
                    break
                if not self._fits(peer, message_bytes(frames)):
                    return "blocked"  # paused: the cursor resumes from the store later
                state = self._send(peer, frames)
                if state != "sent":
                    return state
                cursor.advance()
            if cursor.finished:
                del peer.cursors[key]
        return "idle"

    def _end_streams(self, peer: Peer) -> None:
        """Tell each of the peer's open streams that it ended, so no client waits for events that never come."""
        for cursor in peer.cursors.values():
            self.queue(peer, error_message(
                getattr(cursor, "rid", None), "internal_error",
                "The server could not read this job's stored events or frames (was the job deleted?).",
                "Check the job with `tokenflow jobs show ID`, then subscribe or fetch again."))
        peer.cursors.clear()

    def _fits(self, peer: Peer, size: int) -> bool:
        if size < _TRACK_FROM:
            return True
        total = self.queued_bytes()
        mine = peer.queued_bytes == 0 or peer.queued_bytes + size <= self.limits.client_queue_bytes
        everyone = total == 0 or total + size <= self.limits.total_queue_bytes
        return mine and everyone

    def _send(self, peer: Peer, frames: list) -> str:
        size = message_bytes(frames[-1:])
        track = size >= _TRACK_FROM
        try:
            tracker = self.socket.send_multipart([peer.identity, *frames], zmq.NOBLOCK, copy=False, track=track)
        except zmq.Again:  # this client's send queue is full: try again later
            return "blocked"
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EHOSTUNREACH:  # the client disconnected
                return "gone"
            raise
        if tracker is not None and not tracker.done:  # a tracker comes back only when asked for
            peer.in_flight.append((tracker, size))
            peer.queued_bytes += size
            total = self.queued_bytes()
            self.stats["peak_client_queued_bytes"] = max(self.stats["peak_client_queued_bytes"], peer.queued_bytes)
            self.stats["peak_queued_bytes"] = max(self.stats["peak_queued_bytes"], total)
        return "sent"

    def _settle(self, peer: Peer) -> None:
        """Forget in-flight messages libzmq has finished with."""
        while peer.in_flight and peer.in_flight[0][0].done:
            peer.queued_bytes -= peer.in_flight.popleft()[1]
        # out-of-order completions are rare (one pipe per client); they settle on a later pass

    def _settle_orphans(self) -> None:
        while self._orphans and self._orphans[0][0].done:
            self._orphan_bytes -= self._orphans.popleft()[1]

    def queued_bytes(self) -> int:
        return self._orphan_bytes + sum(peer.queued_bytes for peer in self.peers.values())

    def _forget(self, peer: Peer) -> None:
        # What ZeroMQ still holds for it keeps counting in the total until libzmq lets go.
        self._orphans.extend(peer.in_flight)
        self._orphan_bytes += peer.queued_bytes
        peer.in_flight.clear()
        peer.queued_bytes = 0
        self.peers.pop(peer.identity, None)

    def expire(self) -> None:
        deadline = self.clock() - self.expire_after
        for peer in [peer for peer in self.peers.values() if peer.last_seen < deadline]:
            self._forget(peer)

    def snapshot(self) -> p.Stats:
        cursors = [k for peer in self.peers.values() for k in peer.cursors]
        return p.Stats(
            clients=len(self.peers), subscriptions=sum(1 for k in cursors if k[0] == "subscribe"),
            fetches=sum(1 for k in cursors if k[0] == "fetch"), queued_bytes=self.queued_bytes(),
            peak_client_queued_bytes=self.stats["peak_client_queued_bytes"],
            peak_queued_bytes=self.stats["peak_queued_bytes"], rss_bytes=_rss_bytes(),
        )


def _rss_bytes() -> int:
    try:
        with open(f"/proc/{os.getpid()}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _protocol_hint(exc: p.ProtocolError) -> str:
    if exc.code == "bad_version":
        return "Update the client or the server so both speak the same protocol version."
    if exc.code == "too_large":
        return ("Requests carry paths and parameters; pixels go in upload_frames messages of at most "
                "max_upload_message_bytes (docs/protocol.md).")
    if exc.code == "unknown_type":
        return "Request types: " + ", ".join(sorted(p.REQUEST_TYPES)) + " (docs/protocol.md)."
    return "See docs/protocol.md for the message format."
