"""docs/protocol.md, rule by rule, against a real `tokenflow serve` (raw ZeroMQ + msgpack).

Each test names the section it checks. Tables are read from the document itself, so
editing the document or the server without the other makes a test fail.
"""

from __future__ import annotations

import re

import msgpack
import pytest

from bridge.wire.edit_params import EDIT_OPTIONS
from tests.conformance.conftest import doc_section, doc_text, names_in, parse_table, unquote

TERMINAL = ("done", "failed", "cancelled")


def spec(server, clip, frames="0:3", steps=2, **params) -> dict:
    values = {"prompt": "a watercolor painting", "steps": steps, "short_side": 64, "kf_interval": 2,
              "preview_every": 1}
    values.update(params)
    out = server.out / f"conf_{frames.replace(':', '-')}_{steps}_{len(params)}.mp4"
    return {"input": str(clip), "params": values, "frames": frames, "output": str(out), "proxy_size": 64}


@pytest.fixture(scope="module")
def finished(server, shipped_clip, context):
    """One job run to its end, every event recorded with its binary frames (Job events)."""
    from tests.conformance.conftest import Raw

    c = Raw(server.endpoint, context)
    try:
        accepted = c.request("submit", {"spec": spec(server, shipped_clip, frames="10:13")})
        assert accepted["type"] == "accepted", accepted
        job = accepted["job"]
        rid = c.send("subscribe", {"from_seq": 1}, job=job)
        msgs = list(c.events(rid, timeout=300))
        return {"job": job, "accepted": accepted, "subscribed": msgs[0][0], "events": msgs[1:]}
    finally:
        c.close()


# --- Messages ---


def test_header_bytes_of_the_worked_example_are_exact_and_answered(raw):
    section = doc_section("Messages")
    block = re.search(r"```\n(\{.*?\})\n((?:[0-9a-f]{2}[ \n])+)```", section, re.S)
    assert block, "the worked header example is missing"
    data = bytes.fromhex(block.group(2).replace("\n", " "))
    assert len(data) == int(re.search(r"\((\d+) bytes", section).group(1))
    shown = block.group(1).replace("nil", "null")
    import json

    assert msgpack.unpackb(data, raw=False) == json.loads(shown)
    assert msgpack.packb(json.loads(shown), use_bin_type=True) == data
    c = raw()
    c.send_frames([data])
    header, _ = c.reply(1)
    assert header["type"] == "welcome" and header["v"] == 1


def test_header_keys_are_exactly_the_documented_ones(raw):
    documented = {unquote(r["key"]) for r in parse_table(doc_section("Messages"), "The header map")}
    header = raw().request("hello", {"client": "conf", "versions": [1]})
    assert set(header) == documented


def test_hello_is_not_required(raw):
    c = raw()
    assert c.request("list", {"limit": 1})["type"] == "jobs"  # no hello on this socket


def test_validation_table(raw, finished):
    """Every row of the validation table: the message it describes gets that code and field."""
    rows = parse_table(doc_section("Messages"), "| problem |")
    makers = {
        "not msgpack, or not a map": lambda c: c.send_frames([b"\xc1not msgpack"]),
        "`v` missing or not an int": lambda c: c.send("list", v="1", rid=7),
        "`v` not a version the server speaks": lambda c: c.send("list", v=99, rid=7),
        "`hello` whose `versions` share none with the server": lambda c: c.send("hello", {"versions": [99]}, rid=7),
        "unknown `type`": lambda c: c.send("no_such_type", rid=7),
        "a request about a job without the header `job`": lambda c: c.send("status", rid=7),
        "a body field missing, of the wrong type, out of range, too long, or unknown":
            lambda c: c.send("list", {"limit": "many"}, rid=7),
        "wrong number of binary frames": lambda c: c.send("list", rid=7, blobs=(b"x",)),
        "message larger than `max_request_bytes`": lambda c: c.send("list", rid=7, blobs=(b"\0" * (1 << 20),)),
    }
    assert {r["problem"] for r in rows} == set(makers), "the validation table and this test disagree"
    for row in rows:
        c = raw()
        makers[row["problem"]](c)
        header, _ = c.recv()
        body = header["body"]
        assert header["type"] == "error", (row, header)
        assert body["code"] == unquote(row["code"]), (row, body)
        expected_field = None if row["`field`"] == "nil" else unquote(row["`field`"])
        if row["`field`"].startswith("`body.FIELD`"):
            assert body["field"].startswith("body."), body
        else:
            assert body["field"] == expected_field, (row, body)
        if row["problem"] != "not msgpack, or not a map":
            assert header["rid"] == 7, (row, header)  # the rid comes back whenever it could be read
        assert body["hint"], (row, body)


def test_strings_longer_than_the_limit_are_refused_by_name(raw, server, shipped_clip):
    limit = int(re.search(r"at most `max_string_chars` \((\d+)\)", doc_section("Messages")).group(1))
    c = raw()
    s = spec(server, shipped_clip)
    s["params"]["prompt"] = "x" * (limit + 1)
    body = c.request("submit", {"spec": s})["body"]
    assert (body["code"], body["field"]) == ("bad_field", "body.spec.params.prompt")
    s["params"]["prompt"] = "p"
    s["input"] = "/" + "a" * limit
    body = c.request("submit", {"spec": s})["body"]
    assert (body["code"], body["field"]) == ("bad_field", "body.spec.input")


# --- Limits ---


def test_limits_table_is_what_welcome_says(raw):
    rows = parse_table(doc_section("Limits"))
    documented = {unquote(r["field"]): float(r["default"]) for r in rows}
    limits = raw().request("hello", {"client": "conf", "versions": [1]})["body"]["limits"]
    assert set(limits) == set(documented)
    assert {k: float(v) for k, v in limits.items()} == documented


def test_too_large_multi_frame_request_keeps_its_rid(raw):
    c = raw()
    rid = c.send("list", blobs=(b"\0" * 600_000, b"\0" * 600_000))
    header, _ = c.reply(rid)
    assert header["body"]["code"] == "too_large" and header["rid"] == rid


def test_single_frame_up_to_the_ceiling_gets_too_large_beyond_it_the_connection_drops(raw):
    rows = {unquote(r["field"]): int(float(r["default"])) for r in parse_table(doc_section("Limits"))}
    c = raw()
    c.send_frames([b"\0" * (rows["max_request_bytes"] + 1)])
    header, _ = c.recv()
    assert header["body"]["code"] == "too_large"
    c.send_frames([b"\0" * (rows["max_frame_bytes"] + 1)])
    with pytest.raises(TimeoutError):
        c.recv(timeout=2.0)  # documented: no reply
    assert raw().request("list", {"limit": 1})["type"] == "jobs"  # and everyone else is served


# --- Requests and replies ---


def test_every_documented_request_type_is_known_and_no_other(raw):
    documented = {unquote(r["type"]) for r in parse_table(doc_section("Requests (client -> server)"))}
    c = raw()
    for type_ in sorted(documented):  # about a job that does not exist: nothing is changed (`delete`!)
        header = c.request(type_, job="nosuchjob")
        assert not (header["type"] == "error" and header["body"]["code"] == "unknown_type"), type_
    header = c.request("welcome")  # a reply type is not a request
    assert header["body"]["code"] == "unknown_type"


def _documented_fields(section: str, type_column: str, body_column: str) -> dict[str, set[str]]:
    return {unquote(r[type_column]): names_in(r[body_column]) for r in parse_table(doc_section(section))}


def test_replies_carry_exactly_their_documented_fields(raw, finished):
    documented = _documented_fields("Replies (server -> client, `rid` copied from the request)", "type", "body")
    c = raw()
    job = finished["job"]
    seen = [
        c.request("hello", {"client": "conf", "versions": [1]}),
        c.request("status", job=job),
        c.request("list", {"limit": 2}),
        c.request("fetch", {"what": "outputs"}, job=job),
        c.request("stats"),
        c.request("heartbeat"),
        c.request("status", job="nosuchjob"),
        finished["subscribed"],
    ]
    rid = c.send("fetch", {"what": "frames", "first": 10, "last": 10}, job=job)
    seen.append(_until(c, rid, "fetch_end"))
    rid = c.send("subscribe", {"from_seq": 10_000}, job=job)
    seen.append(c.reply(rid)[0])  # subscribed
    seen.append(c.request("unsubscribe", job=job))  # ok (and unsubscribed for rid)
    seen.append(c.reply(rid)[0])  # unsubscribed
    assert {h["type"] for h in seen} >= {"welcome", "job", "jobs", "outputs", "stats", "heartbeat", "error",
                                         "subscribed", "fetch_end", "ok", "unsubscribed"}
    for header in seen:
        assert set(header["body"]) == documented[header["type"]], header["type"]


def _until(c, rid, type_):
    while True:
        header, _ = c.reply(rid)
        if header["type"] == type_:
            return header


def test_events_carry_exactly_their_documented_fields(finished):
    documented = _documented_fields("Job events (server -> client)", "type", "body")
    frames_col = {unquote(r["type"]): r["binary frames"] for r in parse_table(doc_section("Job events (server -> client)"))}
    types = set()
    for header, blobs in finished["events"]:
        types.add(header["type"])
        assert set(header["body"]) == documented[header["type"]], header["type"]
        expected = 0 if frames_col[header["type"]].startswith("0") or header["body"].get("omitted") else 1
        assert len(blobs) == expected, header
    assert types >= {"progress", "proxy", "frame", "done"}


def test_job_info_fields(raw, finished):
    text = doc_section("Replies (server -> client, `rid` copied from the request)")
    para = text[text.index("JobInfo:"):text.index("\n\n", text.index("JobInfo:"))]
    info = raw().request("status", job=finished["job"])["body"]["info"]
    assert set(info) == names_in(para)


def test_error_codes_are_documented_and_hints_never_empty(raw, server, shipped_clip, finished):
    text = doc_section("Replies (server -> client, `rid` copied from the request)")
    codes = names_in(text[text.index("Error codes:"):])
    c = raw()
    job = finished["job"]
    provoked = [
        (c.request("submit", {"spec": spec(server, shipped_clip, frames="0:99999")}), "bad_range", "body.spec.frames"),
        (c.request("reorder", {"priority": 1}, job=job), "not_queued", "job"),
        (c.request("status", job="nosuchjob"), "unknown_job", "job"),
        (c.request("submit", {"spec": spec(server, shipped_clip, steps=0)}), "bad_params", "body.spec.params.steps"),
        (c.request("fetch", {"what": "frames", "first": 0, "last": 1}, job=job), "bad_range", "body.first"),
        (c.request("submit", {"spec": {**spec(server, shipped_clip), "input": "/no/such.mp4"}}), "not_found",
         "body.spec.input"),
        (c.request("submit", {"spec": {**spec(server, shipped_clip), "model": "nope"}}), "unknown_model",
         "body.spec.model"),
    ]
    for header, code, field in provoked:
        body = header["body"]
        assert (body["code"], body["field"]) == (code, field), body
        assert body["hint"].strip(), body
        assert code in codes


# --- Edit parameters ---


def test_edit_parameter_table_is_the_code_table():
    text = doc_text()
    table = text[text.index("<!-- edit-parameters: begin -->"):text.index("<!-- edit-parameters: end -->")]
    rows = parse_table(table)
    expected = [
        {"name": f"`{o.name}`", "type": o.type.__name__, "default": o.default_text, "range": o.range_text,
         "option": f"`{o.flag}`" if o.flag else "-", "meaning": o.meaning}
        for o in EDIT_OPTIONS
    ]
    assert rows == expected


@pytest.mark.parametrize("option", [o for o in EDIT_OPTIONS if o.minimum is not None or o.choices],
                         ids=lambda o: o.name)
def test_the_server_refuses_each_parameter_out_of_its_documented_range(raw, server, shipped_clip, option):
    bad = "sideways" if option.choices else option.type(option.minimum) - (1 if option.type is int else 0.5)
    if option.range_note:
        bad = 1  # "0 (auto), or >= 2"
    body = raw().request("submit", {"spec": spec(server, shipped_clip, **{option.name: bad})})["body"]
    assert body["code"] == "bad_params" and body["field"] == f"body.spec.params.{option.name}", body


# --- Job events: order, progress, pixels ---


def test_event_order_and_numbering(finished):
    events = [h for h, _ in finished["events"]]  # subscribed from seq 1
    assert [h["seq"] for h in events] == list(range(1, len(events) + 1))
    assert events[0] == {**finished["accepted"], "rid": events[0]["rid"]}  # the stored accepted, replayed
    assert events[-1]["type"] == "done" and all(h["type"] not in TERMINAL for h in events[:-1])
    sources = [h["body"]["frame"] for h in events if h["type"] == "frame"]
    assert sources == [10, 11, 12, 13]  # source frame numbers, clip order, each once


def test_progress_follows_the_documented_stages(finished):
    text = doc_text()
    table = text[text.index("<!-- progress-stages: begin -->"):text.index("<!-- progress-stages: end -->")]
    order = [unquote(r["stage"]) for r in parse_table(table)]
    progress = [h["body"] for h, _ in finished["events"] if h["type"] == "progress"]
    stages = [p["stage"] for p in progress]
    assert stages == sorted(stages, key=order.index), "stages go forward only"
    assert {"start", "load", "encode", "edit", "decode", "write"} <= set(stages)
    frames_done = [p["frames_done"] for p in progress]
    assert frames_done == sorted(frames_done) and frames_done[-1] == progress[-1]["frames_total"] == 4
    for stage in set(stages):
        steps = [(p["step"], p["total"]) for p in progress if p["stage"] == stage]
        assert [s for s, _ in steps] == sorted(s for s, _ in steps), stage
        assert steps[-1][0] == steps[-1][1] > 0, (stage, steps)  # reaches its total
    edit = [p for p in progress if p["stage"] == "edit"]
    assert edit[-1]["total"] == 2  # steps
    assert all(p["frames_done"] == 0 for p in progress if p["stage"] != "decode" and p["stage"] != "write")
    decode = [p for p in progress if p["stage"] == "decode"]
    assert all(p["eta_s"] is not None for p in decode) and decode[-1]["eta_s"] == 0


def test_pixel_payloads(finished):
    for header, blobs in finished["events"]:
        body = header["body"]
        if header["type"] == "frame":
            h, w, ch = body["shape"]
            assert (h, w, ch, body["dtype"]) == (144, 176, 3, "uint8")  # the source size, RGB
            assert len(blobs[0]) == h * w * ch  # row stride w * 3, no padding
        if header["type"] == "proxy" and body["kind"] == "frame":
            assert (body["width"], body["height"]) == (78, 64)  # the documented 176x144 at proxy_size 64
            assert blobs[0][:2] == b"\xff\xd8"  # jpeg
        if header["type"] == "proxy" and body["kind"] == "preview":
            assert (body["width"], body["height"]) == (78, 64)  # the source's aspect, pad cropped, as documented


# --- Subscriptions ---


def test_omitted_is_always_sent(raw, finished):
    c = raw()
    rid = c.send("subscribe", {"from_seq": 1, "frames": False, "proxies": False}, job=finished["job"])
    for header, blobs in c.events(rid):
        if header["type"] in ("frame", "proxy"):
            assert header["body"]["omitted"] is True and blobs == []
    for header, _ in finished["events"]:
        if header["type"] in ("frame", "proxy"):
            assert header["body"]["omitted"] is False


def test_a_second_subscribe_to_the_same_job_replaces_the_first(raw, finished):
    c = raw()
    first = c.send("subscribe", {"from_seq": 10_000}, job=finished["job"])  # nothing to send yet: stays open
    assert c.reply(first)[0]["type"] == "subscribed"
    second = c.send("subscribe", {"from_seq": 1, "frames": False}, job=finished["job"])
    header, _ = c.reply(first)
    assert (header["type"], header["body"]["reason"]) == ("unsubscribed", "replaced")
    got = [h["type"] for h, _ in c.events(second)]
    assert got[0] == "subscribed" and got[-1] == "done"


def test_list_is_paginated(raw, finished, server, shipped_clip):
    c = raw()
    c.request("submit", {"spec": spec(server, shipped_clip, frames="0:1", steps=1)})  # at least two jobs
    first = c.request("list", {"limit": 1})["body"]
    second = c.request("list", {"limit": 1, "offset": 1})["body"]
    assert first["more"] is True and len(first["jobs"]) == 1 and len(second["jobs"]) == 1
    assert first["jobs"][0]["id"] != second["jobs"][0]["id"]
    max_list = int(re.search(r"`limit` int \(1\.\.(\d+)", doc_section("Requests (client -> server)")).group(1))
    body = c.request("list", {"limit": max_list + 1})["body"]
    assert (body["code"], body["field"]) == ("bad_field", "body.limit")


# --- Cancel ---


def test_cancel_replies_with_the_state_then_the_event_follows(raw, server, shipped_clip):
    c = raw()
    running = c.request("submit", {"spec": spec(server, shipped_clip, frames="20:23", steps=400)})["job"]
    queued = c.request("submit", {"spec": spec(server, shipped_clip, frames="24:25", steps=400)})["job"]
    rid = c.send("subscribe", {"from_seq": 2, "frames": False, "proxies": False}, job=running)
    for header, _ in c.events(rid):
        if header["type"] == "progress" and header["body"]["stage"] in ("encode", "inversion", "edit"):
            break  # the engine works on it
    assert c.request("cancel", job=queued)["body"]["info"]["state"] == "cancelled"
    assert c.request("cancel", job=running)["body"]["info"]["state"] == "running"
    last = None
    for header, _ in c.events(rid):
        last = header
    assert last["type"] == "cancelled"
    assert c.request("cancel", job=running)["body"]["info"]["state"] == "cancelled"  # a no-op now
