"""Wire codec: today's msgpack + hand-written checks vs msgspec Structs (docs/benchmarks.md).

    python benchmarks/bench_wire_codec.py [--repeat 7] [--json FILE]

1. Speed. For the messages that cross the wire most (a submit with a full JobSpec, a
   progress event, a frame event header with its pixel frame, a `jobs` reply of 50
   JobInfo), encode and decode+validate with bridge/wire/protocol.py (msgpack and the
   hand-written `_build`/`_coerce`/`_checks`) and with the msgspec prototype below
   (`msgspec.msgpack.Decoder(type=...)` validating), side by side in one process.
2. Fidelity. The malformed requests of tests/bridge/test_protocol.py and the documented
   limits (docs/protocol.md *Validation*), decoded both ways: does msgspec's
   ValidationError give the same error code, `field` path and message?
3. Lines. How many lines of protocol.py the prototype would remove, and how many it adds
   (counted from the marked sections of this file).

The prototype mirrors only the types the figures need (every request type that has a
range check, and the benchmarked events and replies); a body with no checks converts
from `@dataclass(frozen=True)` to `Struct` line for line, so it changes no count.
msgspec is not a dependency of the project: this file is the only place that imports it.
"""

from __future__ import annotations

import argparse
import ast
import json
import platform
import re
import subprocess
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import msgpack
import msgspec
from msgspec import Meta, Struct

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bridge.wire import protocol as p  # noqa: E402 - the checkout first on the path

# --- msgspec prototype: added to protocol.py (begin) ---
# Constraint aliases: what `_coerce` and `_checks` say in code, said in types.
MaxStr = Annotated[str, Meta(max_length=p.MAX_STRING_CHARS)]  # requests only (strict)
Int64 = Annotated[int, Meta(ge=-p._MAX_INT, le=p._MAX_INT)]  # msgspec ints reach 2**64 - 1
Count = Annotated[int, Meta(ge=0, le=p._MAX_INT)]
Finite = Annotated[float, Meta(ge=-1.7976931348623157e308, le=1.7976931348623157e308)]  # no NaN/inf
JobId = Annotated[str, Meta(pattern=p._JOB_ID.pattern)]
Priority = Annotated[int, Meta(ge=-1000, le=1000)]
Text1024 = Annotated[str, Meta(min_length=1, max_length=1024)]


class FieldProblem(ValueError):
    """Raised by a `__post_init__`: msgspec keeps it as the ValidationError's __cause__."""

    def __init__(self, message: str, path: str):
        super().__init__(message)
        self.path = path


class Req(Struct, frozen=True, forbid_unknown_fields=True):
    """Request bodies: the server rejects unknown fields."""


class Msg(Struct, frozen=True):
    """Reply and event bodies: a client ignores fields a newer server added."""


class JobSpecS(Req, frozen=True):
    input: Annotated[str, Meta(pattern=r"\S", max_length=p.MAX_STRING_CHARS)]
    # dict[str, ParamValue] would check the values, but msgspec names a bad one
    # `params[...]`, never `params.steps`: the values are checked in __post_init__.
    params: dict[str, Any]
    frames: MaxStr | None = None
    output: MaxStr | None = None
    model: MaxStr | None = None
    proxy_size: Annotated[int, Meta(ge=16, le=1024)] = 160
    proxy_format: Literal["jpeg", "png"] = "jpeg"
    priority: Priority = 0
    client_token: Annotated[str, Meta(min_length=1, max_length=128)] | None = None
    preset: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    start_number: Annotated[int, Meta(ge=0, le=99999999)] | None = None
    overwrite: bool = False
    destination: Text1024 | None = None
    name_template: Text1024 | None = None
    name: Text1024 | None = None
    batch: Text1024 | None = None
    row: Annotated[int, Meta(ge=0, le=1000000)] | None = None

    def __post_init__(self) -> None:
        for k, v in self.params.items():
            where = f"body.spec.params.{k}"
            if not (v is None or isinstance(v, (bool, str, float)) or (isinstance(v, int) and abs(v) <= p._MAX_INT)):
                raise FieldProblem(f"{where} must be a number, string or boolean.", where)
            if isinstance(v, str) and k in p._PROMPT_PARAMS and len(v) > p.MAX_PROMPT_CHARS:
                raise FieldProblem(f"{where} is {len(v)} characters long; the model's text encoder (CLIP) reads "
                                   f"only 77 tokens, so at most {p.MAX_PROMPT_CHARS} characters are accepted.", where)
            if isinstance(v, str) and len(v) > p.MAX_STRING_CHARS:
                raise FieldProblem(f"{where} is {len(v)} characters long; the limit is {p.MAX_STRING_CHARS}.", where)


class SubmitS(Req, frozen=True):
    spec: JobSpecS
    dry_run: bool = False


class HelloS(Req, frozen=True):
    client: Annotated[str, Meta(max_length=256)] = ""
    versions: list[Int64] = msgspec.field(default_factory=lambda: list(p.SUPPORTED_VERSIONS))


class EmptyS(Req, frozen=True):  # cancel, status: the header names the job
    pass


class SubscribeS(Req, frozen=True):
    from_seq: Annotated[int, Meta(ge=1, le=p._MAX_INT)] = 1
    frames: bool = True
    proxies: bool = True


class FetchS(Req, frozen=True):
    what: Literal["outputs", "frames"] = "outputs"
    first: Int64 | None = None
    last: Int64 | None = None

    def __post_init__(self) -> None:
        if self.first is not None and self.last is not None and self.first > self.last:
            raise FieldProblem("body.first must not be after body.last.", "body.first")


class ListJobsS(Req, frozen=True):
    # list[Literal[JOB_STATES]] names the element (`body.states[0]`); the protocol names `body.states`.
    states: list[MaxStr] | None = None
    limit: Annotated[int, Meta(ge=1, le=p.MAX_LIST)] = 100
    offset: Count = 0
    batch: MaxStr | None = None

    def __post_init__(self) -> None:
        for s in self.states or ():
            if s not in p.JOB_STATES:
                raise FieldProblem(f"body.states: unknown state {s!r}; known: {list(p.JOB_STATES)}.", "body.states")


class ReorderS(Req, frozen=True):
    priority: Priority | None = None
    position: Count | None = None

    def __post_init__(self) -> None:
        if self.priority is None and self.position is None:
            raise FieldProblem("reorder needs body.priority or body.position.", "body")


class QueueControlS(Req, frozen=True):
    action: Literal["pause", "resume"] | None = None


class ReadS(Req, frozen=True):
    name: Annotated[str, Meta(min_length=1, max_length=4096)] = ""  # "" is refused, as today
    offset: Count = 0
    length: Annotated[int, Meta(ge=1, le=p.MAX_CHUNK_BYTES)] = p.MAX_CHUNK_BYTES


class ProbeS(Req, frozen=True):
    input: MaxStr = ""


class ProgressS(Msg, frozen=True):
    stage: str = ""
    step: Int64 = 0
    total: Int64 = 0
    frames_done: Int64 = 0
    frames_total: Int64 = 0
    elapsed_s: Finite = 0.0
    eta_s: Finite | None = None


class FrameS(Msg, frozen=True):
    frame: Int64 = 0
    shape: list[Int64] = msgspec.field(default_factory=list)
    dtype: str = "uint8"
    omitted: bool = False


class JobInfoS(Msg, frozen=True):
    id: str
    state: str
    created: Finite
    updated: Finite
    input: str
    prompt: str
    frames: str | None
    output: str | None
    priority: Int64
    position: Int64 | None
    last_seq: Int64
    attempts: Int64
    outputs: list[str]
    error: dict[str, Any] | None
    progress: dict[str, Any] | None
    batch: str | None = None
    name: str | None = None
    row: Int64 | None = None
    n_frames: Int64 | None = None


class JobListS(Msg, frozen=True):
    jobs: list[JobInfoS] = msgspec.field(default_factory=list)
    more: bool = False


# The header's "type" names the body's type from outside the body, so the union is one
# header Struct per message type, tagged by "type" (msgspec writes the tag first).
REQUEST_BODIES: dict[str, type] = {
    "hello": HelloS, "submit": SubmitS, "cancel": EmptyS, "status": EmptyS, "subscribe": SubscribeS,
    "fetch": FetchS, "list": ListJobsS, "reorder": ReorderS, "queue": QueueControlS, "read": ReadS,
    "probe": ProbeS,
}
CLIENT_BODIES: dict[str, type] = {"progress": ProgressS, "frame": FrameS, "jobs": JobListS}
BLOBS = {"frame": 1}


def _header(type_: str, body: type, strict: bool) -> type:
    job: Any = JobId if strict and type_ in p.JOB_REQUESTS else Optional[JobId]  # noqa: UP045
    try:
        body_default = msgspec.field(default_factory=body)
        body()
    except (TypeError, ValueError):  # required fields, or a body that cannot be empty: "body" is required
        body_default = msgspec.NODEFAULT
    return msgspec.defstruct(
        f"{body.__name__}_{type_}", [
            ("v", Int64), ("rid", Count | None, None),
            ("job", job, msgspec.NODEFAULT if strict and type_ in p.JOB_REQUESTS else None),
            ("seq", Count | None, None), ("body", body, body_default),
        ],
        tag_field="type", tag=type_, frozen=True, kw_only=True, forbid_unknown_fields=strict)


HEADERS = {t: _header(t, b, True) for t, b in REQUEST_BODIES.items()}
CLIENT_HEADERS = {t: _header(t, b, False) for t, b in CLIENT_BODIES.items()}
REQUEST_DECODER = msgspec.msgpack.Decoder(Union[tuple(HEADERS.values())])  # type: ignore  # noqa: UP007
CLIENT_DECODER = msgspec.msgpack.Decoder(Union[tuple(CLIENT_HEADERS.values())])  # type: ignore  # noqa: UP007
ENCODER = msgspec.msgpack.Encoder()


class _RidOnly(Struct):  # a refused header's rid, for the error reply (unknown fields ignored)
    rid: Any = None


_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$\.?(?P<path>[^`]*)`)?$", re.DOTALL)
_NAMED = re.compile(r"(?:missing required|unknown) field `([^`]+)`")


def ms_decode(frames: list, decoder: msgspec.msgpack.Decoder, max_bytes: int | None = p.DEFAULT_MAX_REQUEST_BYTES) -> Any:
    """protocol.decode's contract on msgspec: the header Struct, or ProtocolError."""
    if not frames:
        raise p.ProtocolError("bad_message", "Empty message: expected a msgpack header frame.")
    size = sum(len(f) if isinstance(f, (bytes, bytearray)) else len(memoryview(f)) for f in frames)
    if max_bytes is not None and size > max_bytes:
        raise p.ProtocolError("too_large", f"Message of {size} bytes exceeds the limit of {max_bytes} bytes.")
    try:
        header = decoder.decode(frames[0])
    except msgspec.ValidationError as exc:
        raise _translate(exc, frames[0]) from None
    except msgspec.DecodeError as exc:
        raise p.ProtocolError("bad_header", f"The header frame is not valid msgpack ({exc}).") from None
    if header.v not in p.SUPPORTED_VERSIONS:
        raise p.ProtocolError("bad_version", f"Protocol version {header.v} is not supported; this side speaks "
                              f"{list(p.SUPPORTED_VERSIONS)}.", field="v", rid=header.rid)
    tag = type(header).__struct_config__.tag
    expected = 0 if getattr(header.body, "omitted", False) else BLOBS.get(tag, 0)
    if len(frames) - 1 != expected:
        raise p.ProtocolError("bad_message", f"A {tag!r} message carries {expected} binary frame(s), "
                              f"got {len(frames) - 1}.", rid=header.rid)
    return header


def _translate(exc: msgspec.ValidationError, raw: Any) -> p.ProtocolError:
    """msgspec's 'Expected `int` >= 16 - at `$.body.spec.proxy_size`' as code + field + message."""
    try:
        rid = msgspec.msgpack.decode(raw, type=_RidOnly).rid
    except msgspec.MsgspecError:
        rid = None
    rid = rid if isinstance(rid, int) and not isinstance(rid, bool) and 0 <= rid <= p._MAX_INT else None
    if isinstance(exc.__cause__, FieldProblem):
        return p.ProtocolError("bad_field", str(exc.__cause__), field=exc.__cause__.path, rid=rid)
    m = _AT.match(str(exc))
    assert m is not None
    message, path = m["message"], m["path"] or ""
    named = _NAMED.search(message)
    if named:
        path = f"{path}.{named[1]}" if path else named[1]
    if message.startswith("Expected `object`") and not path:
        return p.ProtocolError("bad_header", "The header must be a msgpack map.", rid=rid)
    if path == "type":
        return p.ProtocolError("unknown_type" if "Invalid value" in message else "bad_field", message,
                               field="type", rid=rid)
    return p.ProtocolError("bad_field", f"{path or 'header'}: {message}.", field=path or None, rid=rid)
# --- msgspec prototype: added to protocol.py (end) ---


# ---------------------------------------------------------------------------
# 1. Speed
# ---------------------------------------------------------------------------

PARAMS = {
    "prompt": "a watercolor painting of a red car on a coastal road at dusk", "steps": 50, "guidance": 7.5,
    "kf_interval": 8, "seed": 1234, "short_side": 512, "method": "tokenflow", "batch_size": 8,
    "negative_prompt": "ugly, blurry, low res, unrealistic, unaesthetic", "pnp_f_t": 0.8,
}
SPEC: dict[str, Any] = dict(  # noqa: C408
    input="/Volumes/Media/Project/carphone_pristine.mp4", params=PARAMS, frames="100:219",
    output="/Volumes/Renders/{job}.mov", model="sd21-base", proxy_size=160, proxy_format="jpeg", priority=0,
    client_token="4f8d2c1e-9a7b-4c3d-8e2f-1a2b3c4d5e6f", preset="prores_422_hq", start_number=1001,
    overwrite=False, destination="/Volumes/Renders", name_template="{clip}_{first}-{last}_{prompt}_{seed}_{job}",
    name="carphone", batch="batch-2026-11-23", row=3,
)
PROGRESS: dict[str, Any] = dict(  # noqa: C408
    stage="edit", step=23, total=50, frames_done=40, frames_total=120, elapsed_s=41.25, eta_s=48.5)
FRAME: dict[str, Any] = dict(  # noqa: C408
    frame=1042, shape=[1080, 1920, 3], dtype="uint8", omitted=False)
PIXELS = bytes(1080 * 1920 * 3)  # rides as its own frame: neither codec touches it


def job_info(i: int) -> dict[str, Any]:
    return dict(  # noqa: C408
        id=f"j{i:08x}", state=p.JOB_STATES[i % 5], created=1.7e9 + i, updated=1.7e9 + i + 30.5,
        input="/Volumes/Media/Project/carphone_pristine.mp4", prompt=PARAMS["prompt"], frames="100:219",
        output=f"/Volumes/Renders/j{i:08x}.mov", priority=0, position=i if i % 5 == 0 else None, last_seq=130,
        attempts=1, outputs=[f"/Volumes/Renders/j{i:08x}.mov"],
        error={"code": "cancelled", "message": "Cancelled by the user.", "hint": ""} if i % 5 == 4 else None,
        progress=PROGRESS if i % 5 == 1 else None, batch="batch-2026-11-23", name="carphone", row=i, n_frames=120,
    )


JOBS = [job_info(i) for i in range(50)]


class Case:
    """One message both ways: today's Envelope and the msgspec header Struct holding the same values."""

    def __init__(self, label: str, type_: str, today: p.Envelope, header: Any, *, request: bool, from_store: dict | None):
        self.label, self.type, self.today, self.header = label, type_, today, header
        self.request, self.from_store = request, from_store
        self.frames = p.encode(today)
        ms_frames = [ENCODER.encode(header), *today.blobs]
        assert msgpack.unpackb(ms_frames[0]) == msgpack.unpackb(self.frames[0]), label  # the same message
        self.header_bytes = len(self.frames[0])

    def today_encode(self) -> list:
        return p.encode(self.today)

    def today_encode_raw(self) -> list:  # how the server sends a stored event: its body is a dict already
        return p.encode_raw(self.type, self.from_store or {}, rid=self.today.rid, job=self.today.job,
                            seq=self.today.seq, blobs=self.today.blobs)

    def ms_encode(self) -> list:
        return [ENCODER.encode(self.header), *self.today.blobs]

    def ms_encode_dict(self) -> list:  # msgspec packing the same stored dict
        header = {"v": 1, "type": self.type, "rid": self.today.rid, "job": self.today.job, "seq": self.today.seq,
                  "body": self.from_store}
        return [ENCODER.encode(header), *self.today.blobs]

    def today_decode(self) -> Any:
        if self.request:
            return p.decode(self.frames, allowed=p.REQUEST_TYPES)
        return p.decode(self.frames, strict=False, max_bytes=None)

    def ms_decode(self) -> Any:
        if self.request:
            return ms_decode(self.frames, REQUEST_DECODER)
        return ms_decode(self.frames, CLIENT_DECODER, max_bytes=None)


def cases() -> list[Case]:
    spec = p.JobSpec(**SPEC)
    jobs = [p.JobInfo(**j) for j in JOBS]
    submit_h = HEADERS["submit"](v=1, rid=7, job=None, seq=None, body=SubmitS(spec=JobSpecS(**SPEC)))
    return [
        Case("submit (full JobSpec)", "submit", p.Envelope(p.Submit(spec=spec), rid=7), submit_h,
             request=True, from_store=None),
        Case("progress event", "progress", p.Envelope(p.Progress(**PROGRESS), rid=3, job="j00000001", seq=57),
             CLIENT_HEADERS["progress"](v=1, rid=3, job="j00000001", seq=57, body=ProgressS(**PROGRESS)),
             request=False, from_store=PROGRESS),
        Case("frame event (+1080p frame)", "frame",
             p.Envelope(p.Frame(**FRAME), rid=3, job="j00000001", seq=58, blobs=(PIXELS,)),
             CLIENT_HEADERS["frame"](v=1, rid=3, job="j00000001", seq=58, body=FrameS(**FRAME)),
             request=False, from_store=FRAME),
        Case("jobs reply (50 JobInfo)", "jobs", p.Envelope(p.JobList(jobs=jobs, more=True), rid=9),
             CLIENT_HEADERS["jobs"](v=1, rid=9, job=None, seq=None,
                                    body=JobListS(jobs=[JobInfoS(**j) for j in JOBS], more=True)),
             request=False, from_store=None),
    ]


def best_us(fn: Callable[[], Any], repeat: int) -> float:
    """Best of `repeat` runs of ~0.2 s each, microseconds per call (the machine is shared: best is truest)."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    number = max(1, number)
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def speed(repeat: int) -> list[dict[str, Any]]:
    rows = []
    for c in cases():
        row: dict[str, Any] = {"message": c.label, "header_bytes": c.header_bytes}
        row["encode_today_us"] = best_us(c.today_encode, repeat)
        row["encode_msgspec_us"] = best_us(c.ms_encode, repeat)
        if c.from_store is not None:
            row["encode_raw_today_us"] = best_us(c.today_encode_raw, repeat)
            row["encode_raw_msgspec_us"] = best_us(c.ms_encode_dict, repeat)
        row["decode_today_us"] = best_us(c.today_decode, repeat)
        row["decode_msgspec_us"] = best_us(c.ms_decode, repeat)
        header = c.frames[0]
        row["unpack_only_us"] = best_us(lambda h=header: msgpack.unpackb(h, raw=False), repeat)  # of today's decode
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------
# 2. Fidelity: the documented error replies, both ways
# ---------------------------------------------------------------------------


def _req(header: dict, *blobs: bytes) -> list:
    return [msgpack.packb(header, use_bin_type=True), *blobs]


def _submit(**spec: Any) -> list:
    return _req({"v": 1, "type": "submit", "rid": 5, "body": {"spec": {"input": "a", "params": {}, **spec}}})


FIDELITY: list[tuple[str, list]] = [
    # tests/bridge/test_protocol.py::test_malformed_requests_are_named, in its order
    ("empty message", []),
    ("not msgpack", [b"\xc1garbage"]),
    ("header not a map", [msgpack.packb([1, 2])]),
    ("v missing", _req({"type": "hello"})),
    ("v = 99", _req({"v": 99, "type": "hello"})),
    ("type missing", _req({"v": 1})),
    ("unknown type", _req({"v": 1, "type": "launch_missiles"})),
    ("reply type as request", _req({"v": 1, "type": "welcome"})),
    ("rid = -1", _req({"v": 1, "type": "hello", "rid": -1})),
    ("rid a string", _req({"v": 1, "type": "hello", "rid": "seven"})),
    ("unknown header field", _req({"v": 1, "type": "hello", "extra": 1})),
    ("cancel without job", _req({"v": 1, "type": "cancel"})),
    ("job '../../etc'", _req({"v": 1, "type": "cancel", "job": "../../etc"})),
    ("seq = -5", _req({"v": 1, "type": "status", "job": "j", "seq": -5})),
    ("body a list", _req({"v": 1, "type": "submit", "body": []})),
    ("spec missing", _req({"v": 1, "type": "submit", "body": {}})),
    ("input missing", _req({"v": 1, "type": "submit", "body": {"spec": {"params": {}}}})),
    ("input an int", _submit(input=5)),
    ("params.steps a list", _submit(params={"steps": [1]})),
    ("proxy_size = 1", _submit(proxy_size=1)),
    ("priority = true", _submit(priority=True)),
    ("from_seq = 0", _req({"v": 1, "type": "subscribe", "job": "j", "body": {"from_seq": 0}})),
    ("what = 'secrets'", _req({"v": 1, "type": "fetch", "job": "j", "body": {"what": "secrets"}})),
    ("first after last", _req({"v": 1, "type": "fetch", "job": "j", "body": {"what": "frames", "first": 9, "last": 2}})),
    ("states ['zombie']", _req({"v": 1, "type": "list", "body": {"states": ["zombie"]}})),
    ("reorder, empty body", _req({"v": 1, "type": "reorder", "job": "j", "body": {}})),
    ("hello with a frame", _req({"v": 1, "type": "hello"}, b"pixels?")),
    # docs/protocol.md: the limits, and messages with their ranges
    ("proxy_size = 2000", _submit(proxy_size=2000)),
    ("priority = 5000", _submit(priority=5000)),
    ("input all spaces", _submit(input="   ")),
    ("prompt of 1001 chars", _submit(params={"prompt": "x" * 1001})),
    ("input of 4097 chars", _submit(input="/" + "a" * 4096)),
    ("unknown spec field", _submit(colour="red")),
    ("limit = 1001", _req({"v": 1, "type": "list", "body": {"limit": 1001}})),
    ("client_token ''", _submit(client_token="")),
    ("NaN in progress (client)", _req({"v": 1, "type": "progress", "body": {"elapsed_s": float("nan")}})),
]


def _outcome(fn: Callable[[], Any]) -> tuple[str, str | None, str, int | None]:
    try:
        fn()
    except p.ProtocolError as exc:
        return exc.code, exc.field, exc.message, exc.rid
    return "accepted", None, "", None


def fidelity() -> list[dict[str, Any]]:
    rows = []
    for label, frames in FIDELITY:
        client = label.endswith("(client)")
        today = _outcome(lambda f=frames, c=client: p.decode(f, strict=not c, allowed=None if c else p.REQUEST_TYPES))
        ms = _outcome(lambda f=frames, c=client: ms_decode(f, CLIENT_DECODER if c else REQUEST_DECODER))
        rows.append({
            "case": label, "today": today[:3], "msgspec": ms[:3],
            "code": today[0] == ms[0], "field": today[1] == ms[1], "message": today[2] == ms[2],
            "rid": today[3] == ms[3],
        })
    return rows


# ---------------------------------------------------------------------------
# 3. Lines
# ---------------------------------------------------------------------------

# Whole definitions in protocol.py that the Decoder's typed validation replaces.
REMOVED_DEFS = ("to_wire", "_FieldError", "_HINTS", "_hints", "_build", "_optional", "_coerce", "_checks")


def _code_lines(lines: list[str]) -> int:
    return sum(1 for line in lines if line.strip() and not line.strip().startswith("#"))


def lines() -> dict[str, Any]:
    source = (REPO / "bridge" / "wire" / "protocol.py").read_text()
    text = source.splitlines()
    spans: dict[str, tuple[int, int]] = {}
    for node in ast.parse(source).body:
        names = [node.name] if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else []
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names = [node.target.id]
        for name in names:
            start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            spans[name] = (start, node.end_lineno or node.lineno)
    removed = {n: _code_lines(text[a - 1:b]) for n, (a, b) in spans.items() if n in REMOVED_DEFS}
    # decode(): its header checks (from reading `rid` to `_checks(body)`) become the typed header.
    a, b = spans["decode"]
    body = text[a - 1:b]
    first = next(i for i, s in enumerate(body) if s.strip().startswith('rid = header.get("rid")'))
    last = next(i for i, s in enumerate(body) if "_checks(body)" in s)
    removed["decode: header checks"] = _code_lines(body[first:last + 1])
    mine = Path(__file__).read_text().splitlines()
    begin = next(i for i, s in enumerate(mine) if "msgspec prototype: added to protocol.py (begin)" in s)
    end = next(i for i, s in enumerate(mine) if "msgspec prototype: added to protocol.py (end)" in s)
    proto = mine[begin:end]
    # Struct bodies replace dataclass bodies one for one; what is *added* is everything else.
    body_starts = [i for i, s in enumerate(proto) if re.match(r"class \w+S\((Req|Msg)", s)]
    struct_lines = 0
    for i in body_starts:
        j = i + 1
        while j < len(proto) and (not proto[j].strip() or proto[j].startswith((" ", "\t"))):
            j += 1
        block = proto[i:j]
        # __post_init__ checks are additions (they were _checks lines, counted as removed above)
        post = next((k for k, s in enumerate(block) if "def __post_init__" in s), len(block))
        struct_lines += _code_lines(block[:post])
    added = _code_lines(proto) - struct_lines
    return {"removed": removed, "removed_total": sum(removed.values()), "added_total": added,
            "protocol_py_code_lines": _code_lines(text)}


def worked_example() -> dict[str, Any]:
    """docs/protocol.md's worked header (hello, rid 1): the same bytes from both encoders?"""
    today = p.encode(p.Envelope(p.Hello(client="me"), rid=1))[0]
    ms = ENCODER.encode(HEADERS["hello"](v=1, rid=1, job=None, seq=None, body=HelloS(client="me")))
    return {"today": today.hex(" "), "msgspec": ms.hex(" "), "same_bytes": today == ms,
            "same_map": msgpack.unpackb(today) == msgpack.unpackb(ms)}


# ---------------------------------------------------------------------------
# 4. Import cost (a fresh interpreter per figure; best of 5)
# ---------------------------------------------------------------------------


def import_ms(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                 cwd=REPO).stdout) for _ in range(5)]
    return min(runs) * 1e3


# ---------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description="Wire codec: msgpack + hand-written checks vs msgspec.")
    ap.add_argument("--repeat", type=int, default=7, help="timing repeats per figure (best is kept)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    print(f"python {platform.python_version()}, msgpack {'.'.join(map(str, msgpack.version))}, "
          f"msgspec {msgspec.__version__}, {platform.machine()}")
    rows = speed(args.repeat)
    print("\n1. Speed, microseconds per message (best of", args.repeat, "runs)\n")
    print("| message | header bytes | encode today | encode msgspec | ratio | decode+validate today "
          "| of which msgpack.unpackb | decode+validate msgspec | ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        enc = f"{r['encode_today_us']:.1f} | {r['encode_msgspec_us']:.1f} | {r['encode_today_us'] / r['encode_msgspec_us']:.1f}x"
        dec = f"{r['decode_today_us']:.1f} | {r['unpack_only_us']:.1f} | {r['decode_msgspec_us']:.1f} | {r['decode_today_us'] / r['decode_msgspec_us']:.1f}x"
        print(f"| {r['message']} | {r['header_bytes']} | {enc} | {dec} |")
    print("\nStored events as the server sends them (encode_raw of the stored dict vs msgspec packing that dict):")
    for r in rows:
        if "encode_raw_today_us" in r:
            print(f"  {r['message']}: {r['encode_raw_today_us']:.1f} us vs {r['encode_raw_msgspec_us']:.1f} us "
                  f"({r['encode_raw_today_us'] / r['encode_raw_msgspec_us']:.1f}x)")

    fid = fidelity()
    print("\n2. Fidelity: today's reply vs msgspec's, same malformed input\n")
    print("| case | today: code, field | msgspec: code, field | code | field | message | msgspec's message |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    yes = {True: "same", False: "**differs**"}
    for r in fid:
        print(f"| {r['case']} | {r['today'][0]}, {r['today'][1]} | {r['msgspec'][0]}, {r['msgspec'][1]} "
              f"| {yes[r['code']]} | {yes[r['field']]} | {yes[r['message']]} | {r['msgspec'][2][:90]} |")
    n = len(fid)
    same = {k: sum(r[k] for r in fid) for k in ("code", "field", "message", "rid")}
    print(f"\n{n} cases: code same in {same['code']}, field same in {same['field']}, message same in "
          f"{same['message']}, rid same in {same['rid']}")

    count = lines()
    print("\n3. Lines of code (comments and blank lines not counted)\n")
    for name, n_lines in count["removed"].items():
        print(f"  removed  {n_lines:4d}  {name}")
    print(f"  removed  {count['removed_total']:4d}  in all, of {count['protocol_py_code_lines']} in protocol.py")
    print(f"  added    {count['added_total']:4d}  (constraint aliases, header Structs, __post_init__ checks, "
          "error translation, decode)")

    example = worked_example()
    print(f"\nThe worked header of docs/protocol.md (hello, rid 1): same bytes {example['same_bytes']}, "
          f"same map {example['same_map']}")
    print(f"  today   {example['today']}\n  msgspec {example['msgspec']}")

    imports = {m: import_ms(m) for m in ("msgpack", "msgspec.msgpack", "bridge.wire.protocol")}
    print("\n4. Import time in a fresh interpreter, ms (best of 5): "
          + ", ".join(f"{m} {ms:.1f}" for m, ms in imports.items()))

    if args.json:
        args.json.write_text(json.dumps({"speed": rows, "fidelity": fid, "lines": count, "worked_example": example,
                                         "import_ms": imports}, indent=1))


if __name__ == "__main__":
    main()
