"""Which endpoints a client may start `tokenflow serve` on when nothing answers (the handoff, the panel)."""

from __future__ import annotations

import pytest

from bridge.wire.local import can_start_here


@pytest.mark.parametrize("endpoint, startable", [
    ("ipc:///run/user/1000/tokenflow/server.sock", True),
    ("tcp://127.0.0.1:7460", True),
    ("tcp://localhost:7460", True),
    ("tcp://[::1]:7460", True),
    ("inproc://tokenflow", False),  # lives inside one process
    ("tcp://0.0.0.0:7460", False),  # every interface: `serve` must be asked for that by name
    ("tcp://127.0.0.1:*", False),  # no port to find it at again
    ("tcp://192.168.1.20:7460", False),  # another machine, perhaps
    ("tcp://127.0.0.1:7460/extra", False),
])
def test_only_this_users_local_endpoints_are_started(endpoint, startable):
    assert can_start_here(endpoint) is startable
