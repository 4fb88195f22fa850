"""The connection options of the client commands, declared once: --server, --server-key, --client-key, --timeout.

`connection_options()` returns an argparse parent parser (`add_parser(..., parents=[...])`);
the commands differ only in which of the four they take, their defaults and their help,
which the arguments say. `curve_keys(args)` turns the two key options into keys.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the wire (pyzmq) loads only when a command connects
    from bridge.wire.client import CurveKeys

SERVER_HELP = "server endpoint (default: $TOKENFLOW_SERVER or your own server's private ipc:// socket)"
REMOTE = " (remote servers)"
ANSWER_HELP = "seconds to wait for an answer (default: %(default)s)"


def connection_options(*, server_help: str = SERVER_HELP, server_optional: bool = False,
                       keys: bool = True, key_note: str = REMOTE,
                       timeout: float | None = 10.0, timeout_help: str = ANSWER_HELP,
                       keep_earlier: bool = False) -> argparse.ArgumentParser:
    """A parent parser with the connection options a command takes.

    server_optional: `--server` alone means the default endpoint (stored as ""); keys=False and
    timeout=None leave those options out; keep_earlier: for a subcommand's copy of its parent's
    options, so that it does not reset a value given before it (`tokenflow queue --server X add`).
    """
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if keep_earlier else value

    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection")
    if server_optional:
        group.add_argument("--server", metavar="ENDPOINT", nargs="?", const="", default=default(None),
                           help=server_help)
    else:
        group.add_argument("--server", metavar="ENDPOINT", default=default(None), help=server_help)
    if keys:
        group.add_argument("--server-key", type=Path, default=default(None),
                           help=f"the server's CurveZMQ public key file{key_note}")
        group.add_argument("--client-key", type=Path, default=default(None),
                           help=f"this client's CurveZMQ .key_secret file{key_note}")
    if timeout is not None:
        group.add_argument("--timeout", type=float, default=default(timeout), help=timeout_help)
    return parent


def connection_defaults(parent: argparse.ArgumentParser) -> dict[str, Any]:
    """The values a parent's options take when none is given (for a command whose actions hold the options)."""
    return vars(parent.parse_args([]))


def curve_keys(args: argparse.Namespace) -> CurveKeys | None:
    """The keys --server-key/--client-key name: both or neither (ClientError for one alone)."""
    from bridge.wire.client import CurveKeys

    return CurveKeys.from_options(args.server_key, args.client_key)
