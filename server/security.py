"""Who may talk to the server: loopback freely; anything else only with CurveZMQ keys.

Key files are ZeroMQ's own certificate format (zmq.auth.create_certificates):
    CURVE_DIR/server.key           the server's public key (give it to clients)
    CURVE_DIR/server.key_secret    the server's key pair (keep it private)
    CURVE_DIR/clients/*.key        public keys of the clients allowed in
`tokenflow serve --init-keys CURVE_DIR` makes all of them plus one client key pair.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator


class SecurityError(Exception):
    pass


_TCP = re.compile(r"^tcp://(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:]+)):(?P<port>\d+|\*)$")


def is_loopback(endpoint: str) -> bool:
    """True for endpoints only this machine can reach: loopback TCP, ipc://, inproc://."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    m = _TCP.match(endpoint)
    if not m:
        return False
    host = m.group("v6") or m.group("host")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # '*', an interface name, or a host name: could be reachable from outside


class KeysExist(SecurityError):
    pass


def init_keys(directory: Path, force: bool = False) -> tuple[Path, Path]:
    """Make a server key pair and one client key pair; returns (server public, client secret) files.

    Existing keys are kept unless `force`: replacing them locks out every client
    that holds the old ones. Secret files are private (0600) from their creation,
    never readable by others even for an instant: the folder is made 0700 and the
    process umask is tightened while zmq writes them.
    """
    names = ("server.key", "server.key_secret", "client.key_secret", "clients/client.key")
    existing = [n for n in names if (directory / n).exists()]
    if existing and not force:
        raise KeysExist(f"{directory} already holds keys ({', '.join(existing)}); replacing them would lock out "
                        "every client that has the old ones. Pass --force to replace them, or choose another folder.")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    clients = directory / "clients"
    clients.mkdir(exist_ok=True)
    old = os.umask(0o077)
    try:
        server_public, _ = zmq.auth.create_certificates(directory, "server")
        client_public, client_secret = zmq.auth.create_certificates(directory, "client")
    finally:
        os.umask(old)
    Path(client_public).replace(clients / "client.key")
    for public in (Path(server_public), clients / "client.key"):
        public.chmod(0o644)  # public keys are for handing out
    for secret in directory.glob("*.key_secret"):
        secret.chmod(0o600)
    return Path(server_public), Path(client_secret)


def secure(socket: zmq.Socket, context: zmq.Context, endpoint: str, curve_dir: Path | None) -> ThreadAuthenticator | None:
    """Set up CurveZMQ on the server socket before bind, or refuse a non-loopback bind without it."""
    if curve_dir is None:
        if not is_loopback(endpoint):
            raise SecurityError(
                f"Refusing to bind {endpoint} without keys: other machines could reach this server. "
                "Bind loopback (tcp://127.0.0.1:PORT), or make keys with `tokenflow serve --init-keys DIR` "
                "and start with --curve-dir DIR."
            )
        return None
    secret_file = Path(curve_dir) / "server.key_secret"
    clients = Path(curve_dir) / "clients"
    if not secret_file.is_file() or not clients.is_dir():
        raise SecurityError(
            f"{curve_dir} must hold server.key_secret and a clients/ folder of allowed public keys; "
            "make them with `tokenflow serve --init-keys DIR`."
        )
    public, secret = zmq.auth.load_certificate(secret_file)
    if secret is None:
        raise SecurityError(f"{secret_file} holds no secret key.")
    auth = ThreadAuthenticator(context)
    auth.start()
    auth.configure_curve(domain="*", location=str(clients))
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_server = True
    return auth
