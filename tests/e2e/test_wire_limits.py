"""No client can crash, wedge or swell the server; no client hangs (issue 6, items 1, 2, 9).

Real `tokenflow serve` processes with the fake engine (the model is not what is tested
here): a flood of fetches closed abruptly, slow subscribers held to the byte budget
the server reports, a refused CurveZMQ key reported within the CLI's timeout.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import msgpack
import pytest
import zmq

from bridge.wire import local
from bridge.wire.client import Client, CurveKeys, EventKind
from tests.e2e.conftest import REPO, ServeProcess

FAKE = ["--engine-factory", "tests.server.fake_engine:factory"]
CLIENT_BUDGET = 400_000  # about five 176x144 frames
TOTAL_BUDGET = 1_000_000


class FakeServe(ServeProcess):
    def __init__(self, root, bind=None, extra=()):
        super().__init__(root, root / "no-model", bind)
        self.extra = list(extra)

    def command(self) -> list[str]:
        return [*super().command(), *FAKE, *self.extra]


@pytest.fixture(scope="module")
def loopback(tmp_path_factory):
    """Loopback TCP: CurveZMQ with the user's local keys (made by the server on first use)."""
    s = FakeServe(tmp_path_factory.mktemp("tcp"), bind="tcp://127.0.0.1:*").start()
    yield s
    s.stop()


def _spec(server, clip, frames, name):
    from bridge.wire import protocol as p

    return p.JobSpec(input=str(clip), frames=frames, output=str(server.out / name),
                     params={"prompt": "x", "steps": 2, "kf_interval": 4, "preview_every": 2})


def _raw_dealer(ctx: zmq.Context, endpoint: str) -> zmq.Socket:
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    keys = CurveKeys.local()
    if local.is_loopback_tcp(endpoint):
        assert keys is not None, "the loopback server made no local keys"
        s.curve_serverkey, s.curve_publickey, s.curve_secretkey = keys.server_public, keys.public, keys.secret
    s.connect(endpoint)
    return s


def test_fetch_flood_closed_abruptly_leaves_the_server_serving(loopback, shipped_clip):
    with Client(loopback.endpoint, timeout=20) as c:
        job = c.submit(_spec(loopback, shipped_clip, "0:7", "flood.mp4")).job
        assert c.wait(job).kind is EventKind.DONE
    header = {"v": 1, "type": "fetch", "job": job, "seq": None, "body": {"what": "frames"}}
    ctx = zmq.Context()
    try:
        for _ in range(3):
            s = _raw_dealer(ctx, loopback.endpoint)
            s.setsockopt(zmq.SNDTIMEO, 5000)
            sent = 0
            try:
                for rid in range(3000):  # never reading a reply
                    s.send_multipart([msgpack.packb({**header, "rid": rid})])
                    sent += 1
            except zmq.Again:
                pass  # the server stopped reading us: our own queue is full
            assert sent >= 100
            s.close(linger=0)  # abruptly, with replies and frames in flight
    finally:
        ctx.term()
    assert loopback.proc.poll() is None, loopback.log.read_text()[-3000:]
    with Client(loopback.endpoint, timeout=20) as c:
        assert [j.id for j in c.list_jobs(limit=5)] == [job]
        assert len(list(c.fetch_frames(job))) == 8
        stats = c.stats()
        assert stats.fetches <= stats.clients * 4  # the documented per-client cap held


def test_fetch_cap_answers_busy(loopback, shipped_clip):
    with Client(loopback.endpoint, timeout=20) as c:
        job = c.list_jobs(states=["done"], limit=1)[0].id
    ctx = zmq.Context()
    try:
        s = _raw_dealer(ctx, loopback.endpoint)
        s.setsockopt(zmq.RCVHWM, 1)
        for rid in range(1, 7):
            s.send_multipart([msgpack.packb({"v": 1, "type": "fetch", "rid": rid, "job": job, "body": {"what": "frames"}})])
        busy = set()
        deadline = time.monotonic() + 20
        while len(busy) < 2 and time.monotonic() < deadline:
            if s.poll(500):
                h = msgpack.unpackb(s.recv_multipart()[0])
                if h["type"] == "error":
                    assert h["body"]["code"] == "busy", h
                    busy.add(h["rid"])
        assert busy == {5, 6}  # max_fetches = 4 per connection
        s.close(linger=0)
    finally:
        ctx.term()


def test_slow_subscribers_are_held_to_the_byte_budget_and_lose_nothing(tmp_path, shipped_clip):
    server = FakeServe(tmp_path, extra=["--client-queue-bytes", str(CLIENT_BUDGET),
                                        "--total-queue-bytes", str(TOTAL_BUDGET)]).start()
    ctx = zmq.Context()
    slow = []
    try:
        with Client(server.endpoint, timeout=20) as c:
            job = c.submit(_spec(server, shipped_clip, "0:59", "slow.mp4")).job
            for _ in range(4):
                s = ctx.socket(zmq.DEALER)
                s.setsockopt(zmq.LINGER, 0)
                s.setsockopt(zmq.RCVHWM, 1)  # a client that reads nothing takes nothing in
                s.setsockopt(zmq.RCVBUF, 4096)
                s.connect(server.endpoint)
                s.send_multipart([msgpack.packb({"v": 1, "type": "subscribe", "rid": 1, "job": job,
                                                 "body": {"from_seq": 1}})])
                slow.append(s)
            deadline = time.monotonic() + 60
            while c.status(job).state != "done":  # the job is not held up by its slow watchers
                assert time.monotonic() < deadline
                for s in slow:  # alive (documented: a client heartbeats), just not reading
                    s.send_multipart([msgpack.packb({"v": 1, "type": "heartbeat", "rid": None, "body": {}})])
                time.sleep(0.3)
            stats = c.stats()
        assert stats.subscriptions == 4
        assert CLIENT_BUDGET // 2 < stats.peak_client_queued_bytes <= CLIENT_BUDGET, stats
        assert stats.peak_queued_bytes <= TOTAL_BUDGET, stats
        for s in slow:  # now they read: everything arrives, in order, nothing dropped
            seqs, frames = [], 0
            while True:
                assert s.poll(20_000), "a paused subscription did not resume"
                parts = s.recv_multipart()
                h = msgpack.unpackb(parts[0])
                if h["seq"] is not None:
                    seqs.append(h["seq"])
                if h["type"] == "frame":
                    frames += 1
                    assert len(parts[1]) == 144 * 176 * 3
                if h["type"] == "done":
                    break
            assert seqs == list(range(1, len(seqs) + 1)) and frames == 60
    finally:
        for s in slow:
            s.close(linger=0)
        ctx.term()
        server.stop()


def _cli(*args: str, timeout: float = 30) -> tuple[int, str, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)
    return proc.returncode, proc.stderr, time.monotonic() - t0


def test_a_refused_key_is_reported_within_the_timeout(tmp_path):
    keys = tmp_path / "keys"
    assert _cli("serve", "--init-keys", str(keys))[0] == 0
    code, err, _ = _cli("serve", "--init-keys", str(keys))
    assert code == 2 and "--force" in err  # existing keys are never replaced silently
    stranger = tmp_path / "stranger"
    assert _cli("serve", "--init-keys", str(stranger))[0] == 0
    server = FakeServe(tmp_path / "srv", bind="tcp://127.0.0.1:*", extra=["--curve-dir", str(keys)]).start()
    try:
        for extra in (["--server-key", str(keys / "server.key"), "--client-key", str(stranger / "client.key_secret")],
                      []):  # a stranger's key; no key at all (the user's local keys are not allowed here)
            code, err, _ = _cli("jobs", "list", "--timeout", "3", "--server", server.endpoint, *extra)
            assert code == 1 and "refused this client" in err, err
            waited = float(re.search(r"gave up after ([0-9.]+) s", err).group(1))
            assert waited <= 3.5, err
        code, err, _ = _cli("jobs", "list", "--timeout", "3", "--server", server.endpoint,
                            "--server-key", str(keys / "server.key"), "--client-key", str(keys / "client.key_secret"))
        assert code == 0, err
    finally:
        server.stop()


def test_a_timeout_says_how_long_it_waited(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, err, took = _cli("jobs", "list", "--timeout", "2", "--server", f"tcp://127.0.0.1:{port}")
    assert code == 1
    waited = float(re.search(r"after waiting ([0-9.]+) s", err).group(1))
    assert 2.0 <= waited < 3.0, err
