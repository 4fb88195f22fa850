"""Who may talk to the server: only the user who runs it, unless keys say otherwise.

The model is in bridge/wire/local.py and docs/protocol.md (Security):
- `ipc://` (the default): the socket file is 0600 in a 0700 folder; the kernel lets in
  only the server's own user. Every peer is that user.
- loopback TCP: CurveZMQ with the user's local key pair (made on first use in the
  private config folder); only the matching client key gets in, so every peer is again
  the server's own user.
- any other address: CurveZMQ with keys given explicitly (`--curve-dir`); each client
  key is its own identity (its jobs are its own), except the user's local client key.

Key files are ZeroMQ's own certificate format (zmq.auth.create_certificates):
    CURVE_DIR/server.key           the server's public key (give it to clients)
    CURVE_DIR/server.key_secret    the server's key pair (keep it private)
    CURVE_DIR/clients/*.key        public keys of the clients allowed in
`tokenflow serve --init-keys CURVE_DIR` makes all of them plus one client key pair.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from bridge.wire.local import (
    LocalSetupError,
    ensure_local_keys,
    ipc_in_use,
    ipc_path,
    is_local,
    is_loopback_tcp,
    local_keys,
)
from server.resolved_job import LOCAL_OWNER


class SecurityError(Exception):
    pass


def is_loopback(endpoint: str) -> bool:
    """True for endpoints only this machine can reach: loopback TCP, ipc://, inproc://."""
    return is_local(endpoint)


def init_keys(directory: Path, force: bool = False) -> tuple[Path, Path]:
    """Make a server key pair and one client key pair; returns (server public, client secret) files.

    Refuses to replace keys already there unless `force`: clients holding the old ones would be locked out.
    """
    directory = Path(directory)
    if not force and any((directory / n).exists() for n in ("server.key_secret", "client.key_secret")):
        raise SecurityError(f"{directory} already holds keys; clients use them. Pass --force to replace them.")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    clients = directory / "clients"
    clients.mkdir(mode=0o700, exist_ok=True)
    old = os.umask(0o077)  # secret keys are 0600 from the moment they exist
    try:
        server_public, _ = zmq.auth.create_certificates(directory, "server")
        client_public, client_secret = zmq.auth.create_certificates(directory, "client")
    finally:
        os.umask(old)
    Path(client_public).replace(clients / "client.key")
    for public in (server_public, clients / "client.key"):
        Path(public).chmod(0o644)  # public keys are meant to be handed out
    return Path(server_public), Path(client_secret)


OwnerOf = Callable[[zmq.Frame], str]


def _curve(socket: zmq.Socket, context: zmq.Context, secret_file: Path, clients: Path,
           local_public: bytes | None) -> tuple[ThreadAuthenticator, OwnerOf]:
    public, secret = zmq.auth.load_certificate(secret_file)
    if secret is None:
        raise SecurityError(f"{secret_file} holds no secret key.")
    auth = ThreadAuthenticator(context)
    auth.start()
    auth.configure_curve(domain="*", location=str(clients))
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_server = True
    # load_certificate gives the public key as Z85 text already, the form ZAP's User-Id takes.
    local_id = local_public.decode() if local_public else None

    def owner_of(frame: zmq.Frame) -> str:
        try:
            user = frame.get("User-Id")
        except zmq.ZMQError:
            user = None
        if not user:
            return "unknown"  # cannot happen behind CurveZMQ; owns nothing, may touch nothing of others
        return LOCAL_OWNER if user == local_id else f"curve:{user}"

    return auth, owner_of


def secure(socket: zmq.Socket, context: zmq.Context, endpoint: str,
           curve_dir: Path | None) -> tuple[ThreadAuthenticator | None, OwnerOf | None]:
    """Set up the server socket before bind; returns (authenticator, owner_of peer frames).

    owner_of None: every peer is the server's own user.
    """
    path = ipc_path(endpoint)
    # In every mode, keys or not: binding replaces the socket file, which would orphan a running server.
    if path is not None and ipc_in_use(path):
        raise SecurityError(f"Another server is already listening on {endpoint}. Stop it first, "
                            "or give this one another --bind ipc://PATH.")
    if curve_dir is not None:
        secret_file = Path(curve_dir) / "server.key_secret"
        clients = Path(curve_dir) / "clients"
        if not secret_file.is_file() or not clients.is_dir():
            raise SecurityError(
                f"{curve_dir} must hold server.key_secret and a clients/ folder of allowed public keys; "
                "make them with `tokenflow serve --init-keys DIR`."
            )
        mine = local_keys()
        local_public = zmq.auth.load_certificate(mine.client_secret)[0] if mine.exist() else None
        return _curve(socket, context, secret_file, clients, local_public)
    if path is not None:
        return None, None
    if is_loopback_tcp(endpoint):
        try:
            keys = ensure_local_keys()
        except (LocalSetupError, OSError) as exc:
            raise SecurityError(f"Cannot set up the local keys that keep other accounts out: {exc}") from None
        auth, _ = _curve(socket, context, keys.server_secret, keys.clients, None)
        return auth, None
    if endpoint.startswith("inproc://"):
        return None, None
    raise SecurityError(
        f"Refusing to bind {endpoint} without keys: other machines could reach this server. "
        "Use the default (a private ipc:// socket), loopback (tcp://127.0.0.1:PORT), or make keys with "
        "`tokenflow serve --init-keys DIR` and start with --curve-dir DIR."
    )


def bind_private(socket: zmq.Socket, endpoint: str) -> None:
    """Bind; an ipc:// socket file is created 0600 (no moment in which others could connect)."""
    path = ipc_path(endpoint)
    if path is None:
        socket.bind(endpoint)
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    old = os.umask(0o077)
    try:
        socket.bind(endpoint)
    finally:
        os.umask(old)
    path.chmod(0o600)
