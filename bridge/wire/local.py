"""Where a user's own server listens, and the keys that prove a local client is that user.

The security model (docs/protocol.md, Security): a server belongs to the user who runs
it, and by default only that user can reach it.

- Default endpoint: an `ipc://` socket in a per-user runtime folder that only the user
  can enter (0700, owned by them; the socket file itself is 0600). The kernel checks
  who connects; no keys are needed.
- Loopback TCP (`tcp://127.0.0.1:PORT`) is opt-in and still proves the user: the server
  uses CurveZMQ with a key pair made on first use in the user's private config folder
  (`local-keys/`, 0700, secret keys 0600), and lets in only the matching client key. A
  client of the same user connecting to a loopback address loads those keys on its own;
  another account cannot read them, so it cannot get in.
- Any other address needs keys given explicitly (`tokenflow serve --curve-dir`).

Standard library, bridge.folders (platformdirs) and pyzmq only: clients inside an editor load this.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

import zmq

from bridge import folders
from bridge.folders import CONFIG_DIR_ENV, RUNTIME_DIR_ENV, config_dir

SOCKET_NAME = "server.sock"
FALLBACK_TCP = "tcp://127.0.0.1:7460"  # where ipc:// does not exist (Windows)
# sun_path is 108 bytes on Linux, 104 on macOS; libzmq needs the whole path in it.
_MAX_IPC_PATH = 100


class LocalSetupError(Exception):
    """The user's private folders are missing, shared, or owned by someone else."""


def _private_dir(path: Path, what: str) -> Path:
    """Create `path` (0700) or check an existing one is the user's own and closed to others."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise LocalSetupError(f"The {what} {path} belongs to another account (uid {st.st_uid}). Remove it, "
                              f"or set ${RUNTIME_DIR_ENV} / ${CONFIG_DIR_ENV} to a folder of your own.")
    if os.name == "posix" and stat.S_IMODE(st.st_mode) & 0o077:
        path.chmod(0o700)  # ours, but open to others: close it
    return path


def runtime_dir() -> Path:
    """The per-user folder holding the server's socket: $TOKENFLOW_RUNTIME_DIR or the platform's."""
    override = folders.override(RUNTIME_DIR_ENV)
    if override:
        return _private_dir(override, "runtime folder")
    base = folders.platform_runtime_dir()
    if base.parent.name.startswith("runtime-") and base.parent.parent == Path("/tmp"):
        _private_dir(base.parent, "runtime folder")  # /tmp/runtime-UID: anyone could have made it first
    return _private_dir(base, "runtime folder")


def ipc_supported() -> bool:
    return bool(zmq.has("ipc"))


def default_endpoint() -> str:
    """The user's own server: ipc:// in the private runtime folder, or loopback TCP where ipc is missing."""
    if not ipc_supported():
        return FALLBACK_TCP
    path = runtime_dir() / SOCKET_NAME
    if len(str(path)) > _MAX_IPC_PATH:
        raise LocalSetupError(f"The socket path {path} is too long for the operating system; "
                              f"set ${RUNTIME_DIR_ENV} to a shorter private folder.")
    return f"ipc://{path}"


_TCP = re.compile(r"^tcp://(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:]+)):(?P<port>\d+|\*)$")


def is_loopback_tcp(endpoint: str) -> bool:
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


def is_local(endpoint: str) -> bool:
    """True for endpoints only this machine can reach: loopback TCP, ipc://, inproc://."""
    return endpoint.startswith(("ipc://", "inproc://")) or is_loopback_tcp(endpoint)


# What `tokenflow serve --bind` is started on when nothing answers (the handoff, the panel):
# this user's ipc:// socket, or the loopback TCP names a user types.
_STARTABLE_TCP = re.compile(r"^tcp://(127\.0\.0\.1|localhost|\[::1\]):\d+$")


def can_start_here(endpoint: str) -> bool:
    """Whether a client may start the server this endpoint names on this machine (not inproc://,
    which lives inside one process; not a wildcard or another host, which `serve` must be asked for)."""
    return endpoint.startswith("ipc://") or bool(_STARTABLE_TCP.match(endpoint))


def ipc_path(endpoint: str) -> Path | None:
    return Path(endpoint[len("ipc://"):]) if endpoint.startswith("ipc://") else None


def ipc_in_use(path: Path) -> bool:
    """Whether a server answers on this socket file (libzmq would silently replace it)."""
    if not path.exists() or not hasattr(socket, "AF_UNIX"):
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


# --- the user's local CurveZMQ keys (loopback TCP) ---


@dataclass(frozen=True)
class LocalKeys:
    folder: Path

    @property
    def server_secret(self) -> Path:
        return self.folder / "server.key_secret"

    @property
    def server_public(self) -> Path:
        return self.folder / "server.key"

    @property
    def client_secret(self) -> Path:
        return self.folder / "client.key_secret"

    @property
    def clients(self) -> Path:
        return self.folder / "clients"

    def exist(self) -> bool:
        return self.server_secret.is_file() and self.client_secret.is_file() and self.clients.is_dir()


def local_keys() -> LocalKeys:
    return LocalKeys(config_dir() / "local-keys")


def ensure_local_keys() -> LocalKeys:
    """Make the user's local key pairs on first use: folder 0700, secret keys 0600 from the start."""
    import zmq.auth

    keys = local_keys()
    _private_dir(keys.folder.parent, "config folder")
    _private_dir(keys.folder, "key folder")
    if keys.exist():
        return keys
    old = os.umask(0o077)  # no moment in which a secret key is readable by others
    try:
        zmq.auth.create_certificates(keys.folder, "server")
        public, _ = zmq.auth.create_certificates(keys.folder, "client")
        keys.clients.mkdir(mode=0o700, exist_ok=True)
        Path(public).replace(keys.clients / "client.key")
    finally:
        os.umask(old)
    return keys
