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
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field

import zmq

from bridge import protocol as p
from server.cursors import Cursor
from server.journal import Doorbell
from server.service import Outcome, Service, error_message

log = logging.getLogger("tokenflow.server")

_MAX_OUTBOX = 1000  # replies queued for a client that does not read them; beyond, it is dropped
_RECV_BURST = 256  # requests handled per wake before sending again (fairness)


@dataclass
class Peer:
    identity: bytes
    last_seen: float
    outbox: deque = field(default_factory=deque)
    cursors: dict[tuple, Cursor] = field(default_factory=dict)


class Front:
    def __init__(self, socket: zmq.Socket, service: Service, doorbell: Doorbell, limits: p.Limits,
                 clock=time.monotonic):
        self.socket = socket
        self.service = service
        self.doorbell = doorbell
        self.limits = limits
        self.clock = clock
        self.expire_after = limits.heartbeat_s * limits.heartbeat_liveness
        self.peers: dict[bytes, Peer] = {}
        self._stopping = False
        self.stats = {"received": 0, "rejected": 0}

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
            if self.socket in ready:
                self.receive()
            self.expire()

    # --- inbound ---

    def receive(self) -> None:
        for _ in range(_RECV_BURST):
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.handle(frames)

    def handle(self, frames: list[bytes]) -> None:
        identity, parts = frames[0], frames[1:]
        now = self.clock()
        peer = self.peers.get(identity)
        known = peer is not None
        if peer is None:
            peer = self.peers[identity] = Peer(identity, now)
        peer.last_seen = now
        self.stats["received"] += 1
        try:
            env = p.decode(parts, allowed=p.REQUEST_TYPES, max_bytes=self.limits.max_request_bytes)
        except p.ProtocolError as exc:
            self.stats["rejected"] += 1
            self.queue(peer, error_message(exc.rid, exc.code, exc.message, _protocol_hint(exc), exc.field))
            return
        if env.type == p.Heartbeat.TYPE:
            reply = p.Heartbeat(server_id=self.service.server_id, known=known)
            self.queue(peer, p.encode(p.Envelope(reply, rid=env.rid)))
            return
        try:
            outcome = self.service.handle(env)
        except Exception as exc:  # a bug must cost one reply, never the server
            log.exception("request %s failed", env.type)
            outcome = Outcome([error_message(env.rid, "internal_error", f"{type(exc).__name__}: {exc}",
                                             "This is a server bug; the server log has details.", job=env.job)])
        for reply in outcome.replies:
            self.queue(peer, reply)
        if outcome.drop_key is not None:
            peer.cursors.pop(outcome.drop_key, None)
        if outcome.cursor is not None:
            peer.cursors[outcome.cursor_key] = outcome.cursor

    def queue(self, peer: Peer, frames: list) -> None:
        if len(peer.outbox) >= _MAX_OUTBOX:
            log.warning("dropping client %s: it does not read its replies", peer.identity.hex())
            self.peers.pop(peer.identity, None)
            return
        peer.outbox.append(frames)

    # --- outbound ---

    def pump(self) -> bool:
        """Send what every client is owed, as far as each one's queue allows. True if any is blocked."""
        blocked = False
        for peer in list(self.peers.values()):
            state = self._pump_peer(peer)
            if state == "gone":
                self.peers.pop(peer.identity, None)
            elif state == "blocked":
                blocked = True
        return blocked

    def _pump_peer(self, peer: Peer) -> str:
        while peer.outbox:
            state = self._send(peer, peer.outbox[0])
            if state != "sent":
                return state
            peer.outbox.popleft()
        for key, cursor in list(peer.cursors.items()):
            while not cursor.finished:
                frames = cursor.peek()
                if frames is None:
                    break
                state = self._send(peer, frames)
                if state != "sent":
                    return state
                cursor.advance()
            if cursor.finished:
                del peer.cursors[key]
        return "idle"

    def _send(self, peer: Peer, frames: list) -> str:
        try:
            self.socket.send_multipart([peer.identity, *frames], zmq.NOBLOCK, copy=False)
            return "sent"
        except zmq.Again:  # this client's send queue is full: try again later
            return "blocked"
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EHOSTUNREACH:  # the client disconnected
                return "gone"
            raise

    def expire(self) -> None:
        deadline = self.clock() - self.expire_after
        for identity in [i for i, peer in self.peers.items() if peer.last_seen < deadline]:
            del self.peers[identity]


def _protocol_hint(exc: p.ProtocolError) -> str:
    if exc.code == "bad_version":
        return "Update the client or the server so both speak the same protocol version."
    if exc.code == "too_large":
        return "Requests carry paths and parameters only; pixels are never sent to the server."
    return "See docs/protocol.md for the message format."
