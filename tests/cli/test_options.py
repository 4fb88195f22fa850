"""The connection options, declared once (cli/options.py): each command keeps its names, defaults and help."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bridge.wire.client import ClientError
from cli.main import build_parser
from cli.options import connection_options, curve_keys

OURS = "server endpoint (default: $TOKENFLOW_SERVER or your own server's private ipc:// socket)"
ANSWER = "seconds to wait for an answer (default: %(default)s)"
REMOTE_KEYS = {"--server-key": "the server's CurveZMQ public key file (remote servers)",
               "--client-key": "this client's CurveZMQ .key_secret file (remote servers)"}

# command -> {option: (default, help)}; an option not listed must be absent
EXPECTED: dict[str, dict[str, tuple[object, str]]] = {
    "submit": {"--server": (None, OURS), **{k: (None, h) for k, h in REMOTE_KEYS.items()}, "--timeout": (10.0, ANSWER)},
    "jobs list": {"--server": (None, OURS), **{k: (None, h) for k, h in REMOTE_KEYS.items()},
                  "--timeout": (10.0, ANSWER)},
    "jobs delete": {"--server": (None, OURS), **{k: (None, h) for k, h in REMOTE_KEYS.items()},
                    "--timeout": (10.0, ANSWER)},
    "queue": {"--server": (None, OURS), **{k: (None, h) for k, h in REMOTE_KEYS.items()},
              "--timeout": (10.0, ANSWER)},
    "queue add": {"--server": (argparse.SUPPRESS, OURS), **{k: (argparse.SUPPRESS, h) for k, h in REMOTE_KEYS.items()},
                  "--timeout": (argparse.SUPPRESS, ANSWER)},
    "probe": {"--server": (None, "ask a running server about a file on its machine (default endpoint when no value)"),
              **{k: (None, h) for k, h in REMOTE_KEYS.items()},
              "--timeout": (60.0, "seconds to wait for the server (default: %(default)s)")},
    "panel": {"--server": (None, OURS), **{k: (None, h) for k, h in REMOTE_KEYS.items()}},
    "handoff": {"--server": (None, "server endpoint (default: $TOKENFLOW_SERVER or local)")},
    "doctor": {"--server": (None, "server to check (default: $TOKENFLOW_SERVER or the local default)"),
               "--timeout": (2.0, "seconds to wait for the server (default: 2)")},
}


def _command(path: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in path.split():
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


@pytest.mark.parametrize("path", sorted(EXPECTED))
def test_each_command_keeps_its_connection_options(path: str) -> None:
    found = {a.option_strings[0]: (a.default, a.help) for a in _command(path)._actions
             if a.option_strings and a.option_strings[0] in ("--server", "--server-key", "--client-key", "--timeout")}
    assert found == EXPECTED[path]


def test_values_parse_as_before() -> None:
    parser = build_parser()
    assert parser.parse_args(["queue", "--server", "X", "add", "f.json"]).server == "X"  # an action keeps it
    assert parser.parse_args(["queue", "add", "f.json", "--timeout", "3"]).timeout == 3.0
    bare = vars(parser.parse_args(["jobs"]))
    assert {k: bare[k] for k in ("server", "server_key", "client_key", "timeout")} == \
        {"server": None, "server_key": None, "client_key": None, "timeout": 10.0}
    assert parser.parse_args(["probe", "x.mp4", "--server"]).server == ""  # alone: the default endpoint
    assert parser.parse_args(["probe", "x.mp4"]).server is None
    assert parser.parse_args(["submit", "x.mp4", "-p", "a", "--server-key", "s.key"]).server_key == Path("s.key")


def test_keys_go_together() -> None:
    parse = argparse.ArgumentParser(parents=[connection_options()]).parse_args
    assert curve_keys(parse([])) is None
    with pytest.raises(ClientError, match="go together"):
        curve_keys(parse(["--server-key", "s.key"]))
