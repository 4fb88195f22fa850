"""The one ordering rule every follower of a job applies (`Client.events` and the panel's link)."""

from __future__ import annotations

import pytest

from bridge.wire import protocol as p
from bridge.wire.client import Order, in_order

LAST = 4  # events 1..4 delivered


@pytest.mark.parametrize("env, order", [
    (p.Envelope(p.Progress(stage="edit"), seq=5), Order.NEXT),
    (p.Envelope(p.Body(), seq=5), Order.UNKNOWN),  # a newer server's event type: counted, not shown
    (p.Envelope(p.Body(), seq=7), Order.GAP),  # unknown, but past a gap: the gap comes first
    (p.Envelope(p.Progress(stage="edit"), seq=6), Order.GAP),
    (p.Envelope(p.Progress(stage="edit"), seq=4), Order.IGNORE),  # a replay of what arrived
    (p.Envelope(p.Body(), seq=3), Order.IGNORE),
    (p.Envelope(p.Subscribed(last_seq=9), seq=5), Order.IGNORE),  # the reply, not an event
    (p.Envelope(p.Progress(stage="edit")), Order.IGNORE),  # no seq: not a job event
], ids=["next", "unknown-next", "unknown-after-gap", "gap", "seen", "unknown-seen", "subscribed", "no-seq"])
def test_each_event_once_and_in_order(env, order):
    assert in_order(env, LAST) is order
