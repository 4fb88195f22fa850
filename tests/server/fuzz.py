"""Random and malformed messages for a server (used in-process and against `tokenflow serve`)."""

from __future__ import annotations

import random

import msgpack
import zmq

from bridge.wire import protocol as p


def _random_value(rng: random.Random, depth: int = 0):
    kinds = ["int", "str", "float", "none", "bool", "bytes", "neg", "big"]
    if depth < 3:
        kinds += ["list", "map"]
    k = rng.choice(kinds)
    if k == "int":
        return rng.randint(0, 100)
    if k == "neg":
        return -rng.randint(1, 1 << 40)
    if k == "big":
        return rng.choice([1 << 63, (1 << 64) - 1, -(1 << 63)])
    if k == "str":
        return rng.choice(["", "x", "../../etc/passwd", "\x00", "é" * 10, "subscribe", "/tmp"])
    if k == "float":
        return rng.choice([0.5, float("nan"), float("inf"), -1e308])
    if k == "bool":
        return rng.random() < 0.5
    if k == "bytes":
        return rng.randbytes(rng.randint(0, 16))
    if k == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if k == "map":
        return {rng.choice(["spec", "input", "params", "from_seq", "what", "first", "x"]): _random_value(rng, depth + 1)
                for _ in range(rng.randint(0, 4))}
    return None


_CHANGES_JOBS = ("cancel", "retry")


def random_message(rng: random.Random, job: str | None = None) -> list[bytes]:
    r = rng.random()
    types = sorted(p.REQUEST_TYPES) + ["welcome", "frame", "nope", ""]
    if r < 0.15:  # garbage bytes
        return [rng.randbytes(rng.randint(0, 200))]
    if r < 0.25:  # many frames
        return [rng.randbytes(rng.randint(0, 8)) for _ in range(rng.randint(2, 20))]
    if r < 0.3:  # not a map
        return [msgpack.packb(_random_value(rng), use_bin_type=True)]
    header = {"v": rng.choice([1, 1, 1, 0, 2, "1", None]), "type": rng.choice(types),
              "rid": rng.choice([1, 2, None, -1, "x", (1 << 64) - 1]),
              "job": rng.choice([None, job, "nope", "../x", 5]), "seq": rng.choice([None, 0, -3, 5]),
              "body": _random_value(rng)}
    if header["type"] in _CHANGES_JOBS and header["job"] == job:
        header["job"] = "nope"  # a well-formed cancel of the test's own job is not an attack; it would obey
    for key in list(header):
        if rng.random() < 0.1:
            del header[key]
    if rng.random() < 0.1:
        header[rng.choice(["extra", "v2"])] = 1
    if header.get("type") == "submit" and rng.random() < 0.5:
        header["body"] = {"spec": {"input": rng.choice(["/no/file.mp4", "", "rel.mp4", 3]),
                                   "params": _random_value(rng), "frames": _random_value(rng)}}
    frames = [msgpack.packb(header, use_bin_type=True)]
    if rng.random() < 0.1:
        frames.append(rng.randbytes(rng.randint(0, 64)))
    return frames


def fuzz(endpoint: str, count: int, seed: int = 0, job: str | None = None, oversize: int = 0) -> int:
    """Send `count` bad messages from a raw DEALER; returns how many replies came back."""
    rng = random.Random(seed)
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    replies = 0
    try:
        for i in range(count):
            s.send_multipart(random_message(rng, job))
            # Read as we go: a client that never reads its replies is dropped by design.
            while s.poll(0 if i % 50 else 20):
                s.recv_multipart()
                replies += 1
        if oversize:
            s.send_multipart([b"\x00" * oversize])  # beyond MAXMSGSIZE: libzmq drops the connection
        deadline_polls = 50
        while deadline_polls and s.poll(100):
            while s.poll(0):
                s.recv_multipart()
                replies += 1
            deadline_polls -= 1
    finally:
        s.close(linger=0)
    return replies
