"""Loopback by default; anything else only with CurveZMQ keys."""

from __future__ import annotations

import pytest

from bridge.client import AccessRefused, Client, CurveKeys
from server.app import Server
from server.paths import DataDir
from server.security import SecurityError, init_keys, is_loopback


@pytest.mark.parametrize(
    "endpoint, local",
    [
        ("tcp://127.0.0.1:7460", True),
        ("tcp://127.0.0.1:*", True),
        ("tcp://localhost:7460", True),
        ("tcp://[::1]:7460", True),
        ("ipc:///tmp/tokenflow.sock", True),
        ("tcp://0.0.0.0:7460", False),
        ("tcp://*:7460", False),
        ("tcp://192.168.1.4:7460", False),
        ("tcp://eth0:7460", False),
        ("tcp://example.com:7460", False),
        ("udp://127.0.0.1:7460", False),
    ],
)
def test_is_loopback(endpoint, local):
    assert is_loopback(endpoint) is local


def test_remote_bind_without_keys_is_refused(harness):
    # Its own data folder: the harness's server holds the lock on the shared one.
    config = harness.config.__class__(**{**harness.config.__dict__, "bind": "tcp://0.0.0.0:*",
                                         "data": DataDir(harness.root / "data-remote")})
    server = Server(config, engine_factory=lambda m: harness.engine, preload=False)
    try:
        with pytest.raises(SecurityError, match="--curve-dir"):
            server.bind()
    finally:
        server.socket.close()
        server.store.close()
        server.lock.release()


def test_curve_keys_let_the_right_client_in(harness, tmp_path):
    harness.stop()
    server_key, client_secret = init_keys(tmp_path / "keys")
    harness.config = harness.config.__class__(**{**harness.config.__dict__, "curve_dir": tmp_path / "keys"})
    harness.start()
    keys = CurveKeys.from_files(server_key, client_secret)
    with Client(harness.endpoint, keys=keys, timeout=5) as c:
        assert c.welcome.models == ["fake", "fake-2"]
    with pytest.raises(AccessRefused, match="refused this client"):
        Client(harness.endpoint, timeout=1).connect()  # no keys: the handshake fails, and the client says so
    stranger = init_keys(tmp_path / "other")[1]
    with pytest.raises(AccessRefused, match="refused this client.*key"):
        Client(harness.endpoint, keys=CurveKeys.from_files(server_key, stranger), timeout=1).connect()
