"""Loopback by default; anything else only with CurveZMQ keys."""

from __future__ import annotations

import pytest

from bridge.wire.client import AccessRefused, Client, CurveKeys, ServerError
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


def test_the_default_socket_is_private_and_not_stolen(harness):
    """ipc:// (the default): 0600 socket in a 0700 folder; a second server on it refuses to start."""
    import stat

    from bridge.wire.local import default_endpoint, runtime_dir

    path = harness.root / "server.sock"  # the harness binds ipc://ROOT/server.sock
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(runtime_dir().stat().st_mode) == 0o700
    assert default_endpoint() == f"ipc://{runtime_dir() / 'server.sock'}"
    config = harness.config.__class__(**{**harness.config.__dict__, "data": DataDir(harness.root / "data-2")})
    second = Server(config, engine_factory=lambda m: harness.engine, preload=False)
    try:
        with pytest.raises(SecurityError, match="already listening"):
            second.bind()
    finally:
        second.socket.close()
        second.store.close()
        second.lock.release()
    with Client(harness.endpoint, timeout=5) as c:  # the first one still answers
        assert c.welcome.server_id == harness.server.server_id


def test_loopback_tcp_lets_in_only_the_users_local_key(harness, tmp_path):
    from bridge.wire.local import local_keys

    harness.stop()
    harness.config = harness.config.__class__(**{**harness.config.__dict__, "bind": "tcp://127.0.0.1:*"})
    harness.start()
    keys = local_keys()
    assert keys.exist() and oct(keys.client_secret.stat().st_mode & 0o777) == "0o600"
    with Client(harness.endpoint, timeout=5) as c:  # loads the local keys by itself
        assert c.welcome.models == ["fake", "fake-2"]
    server_key = keys.server_public
    stranger = init_keys(tmp_path / "other")[1]  # another account's key pair
    with pytest.raises(AccessRefused):
        Client(harness.endpoint, keys=CurveKeys.from_files(server_key, stranger), timeout=1).connect()


def test_jobs_belong_to_the_client_key_that_submitted_them(harness, tmp_path):
    import shutil

    harness.stop()
    keys = tmp_path / "keys"
    server_key, alice_secret = init_keys(keys)
    bob_public, bob_secret = init_keys(tmp_path / "bob")[0].parent / "clients" / "client.key", \
        tmp_path / "bob" / "client.key_secret"
    shutil.copy(bob_public, keys / "clients" / "bob.key")
    harness.config = harness.config.__class__(**{**harness.config.__dict__, "curve_dir": keys,
                                                 "allowed_input_dirs": (harness.clip.parent,)})
    harness.engine.step_s = 0.05
    harness.start()
    alice = Client(harness.endpoint, keys=CurveKeys.from_files(server_key, alice_secret), timeout=5)
    bob = Client(harness.endpoint, keys=CurveKeys.from_files(server_key, bob_secret), timeout=5)
    alice.connect()
    bob.connect()
    try:
        job = alice.submit(harness.spec(steps=200, prompt="alice secret")).job
        for attempt in (lambda: bob.cancel(job), lambda: bob.reorder(job, priority=5),
                        lambda: list(bob.fetch_frames(job)), lambda: bob.outputs(job),
                        lambda: next(iter(bob.events(job)))):
            with pytest.raises(ServerError) as err:
                attempt()
            assert (err.value.code, err.value.field) == ("forbidden", "job")
        seen = bob.status(job)
        assert seen.state in ("queued", "running") and seen.prompt == "" and seen.input == "" and seen.output is None
        assert [j.prompt for j in bob.list_jobs()] == [""]
        assert alice.status(job).prompt == "alice secret"
        assert alice.cancel(job).state in ("running", "cancelled")  # the owner may
    finally:
        alice.close()
        bob.close()
