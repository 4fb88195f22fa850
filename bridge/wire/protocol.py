"""The wire between editors and the inference server (see docs/protocol.md).

A message is a ZeroMQ multipart message: one msgpack *header* frame, then zero or
more raw binary frames (pixels ride there, never inside msgpack). The header is a map

    {"v": 1, "type": "submit", "rid": 7, "job": null, "seq": null, "body": {...}}

Every message type has one frozen dataclass below (its body); `encode` and `decode`
turn an `Envelope` (header fields + body + blobs) into frames and back, validating
every field against the dataclass's type hints. This module is the only place that
knows the wire's shape, and it stays import-light: standard library and msgpack only,
so an editor's Python can load it without numpy, torch or the server.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeGuard, Union

import msgpack

from bridge.wire import edit_params

# A job's states and progress stages have one spelling, in their own standard-library module
# (bridge/wire/lifecycle.py) so summary and editor-side code read them without msgpack; the
# protocol re-exports them (p.JobState, p.Stage, ...).
from bridge.wire.lifecycle import RETRYABLE_STATES, STAGE_ORDER, TERMINAL_STATES, JobState, Stage  # noqa: F401

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = (1,)

# Defaults a server advertises in `welcome`; a client reads the real ones from there.
DEFAULT_MAX_REQUEST_BYTES = 1 << 20  # requests carry paths and prompts, never pixels
# Any single inbound frame up to this size is read and answered (`too_large` when it is
# over max_request_bytes); ZeroMQ drops the connection of a peer sending a bigger frame.
DEFAULT_MAX_FRAME_BYTES = 16 << 20
# Every string in a request (paths, prompts, names) is at most this many characters.
MAX_STRING_CHARS = 4096
# Proxy images: encoded, or "raw" uint8 RGB for clients without an image decoder (the OpenFX effect)
PROXY_FORMATS = ("jpeg", "png", "raw")
HEARTBEAT_INTERVAL_S = 1.0
# A peer is presumed dead after this many heartbeat intervals without any traffic.
HEARTBEAT_LIVENESS = 5

JOB_STATES: tuple[JobState, ...] = tuple(JobState)
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MAX_INT = (1 << 63) - 1
_UPLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_RATE = re.compile(r"^[0-9]{1,9}(/[0-9]{1,9})?$")


def _rate_positive(text: str) -> bool:
    num, _, den = text.partition("/")
    return int(num) > 0 and int(den or "1") > 0
# Largest chunk of an output file one `read` reply carries (see `Read`).
MAX_CHUNK_BYTES = 1 << 20
_BATCH_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")


def is_batch_name(text: str) -> bool:
    """A batch id that is safe as part of a file name: no separators, no '..', no leading dot, bounded."""
    return bool(_BATCH_NAME.fullmatch(text)) and ".." not in text


# Placeholders a `name_template` may use (see bridge/wire/naming.py).
NAME_FIELDS = ("clip", "first", "last", "prompt", "seed", "job", "batch", "row")


class ProtocolError(Exception):
    """An inbound message broke the protocol. `code` goes back on the wire as is."""

    def __init__(self, code: str, message: str, *, field: str | None = None, rid: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.rid = rid


# ---------------------------------------------------------------------------
# Bodies. `TYPE` is the header's "type"; `BLOBS` how many binary frames follow.
# Field types are enforced by `decode`; `_checks` below adds range checks.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Body:
    TYPE: ClassVar[str] = ""
    BLOBS: ClassVar[int] = 0


# --- requests (client -> server) ---


@dataclass(frozen=True)
class Hello(Body):
    TYPE: ClassVar[str] = "hello"
    client: str = ""
    versions: list[int] = field(default_factory=lambda: list(SUPPORTED_VERSIONS))


@dataclass(frozen=True)
class JobSpec:
    """What a job does. Paths are paths on the server's machine."""

    input: str
    params: dict[str, Any]  # EditParams fields by name (prompt, steps, guidance, ...)
    frames: str | None = None  # "FIRST:LAST" in source frame numbers, inclusive; None = whole clip
    output: str | None = None  # movie file or image-sequence pattern; None = server default
    model: str | None = None  # one of welcome.models; None = the server's default
    proxy_size: int = 160  # short side of per-frame proxies, pixels
    proxy_format: str = "jpeg"  # "jpeg", "png" or "raw" (uint8 RGB rows, top row first)
    priority: int = 0  # higher runs first; FIFO within a priority
    # Makes submit idempotent: a second submit with the same token returns the first job.
    client_token: str | None = None
    # Export preset name (bridge.media.presets, `tokenflow formats`); None = implied by `output`.
    preset: str | None = None
    # First number of an image sequence; None = the source frame numbers.
    start_number: int | None = None
    # Carry the source's audio into a movie output (false: the picture alone, `--no-audio`).
    audio: bool = True
    # Replace an existing output (a file, or frames of the same sequence pattern); the
    # input itself is never replaced. `{job}` in `output` becomes the job id.
    overwrite: bool = False
    # The render queue (docs/queue.md): with no `output`, the server names the output
    # `destination/<name_template>` (+ the format's extension), never reusing a name.
    destination: str | None = None  # absolute folder on the server's machine
    name_template: str | None = None  # e.g. "{clip}_{first}-{last}_{prompt}_{seed}_{job}"
    name: str | None = None  # the clip's name for {clip} (default: the input's file name)
    batch: str | None = None  # jobs queued together share it; the server writes their summary
    row: int | None = None  # the job's place in its batch file, for {row} and messages
    # How many jobs the batch holds: the server queues none of them unless the queue has room for all.
    batch_jobs: int | None = None
    # The source is an upload (`upload_open`/`upload_frames`) instead of a file: `input` is then "".
    upload: str | None = None


@dataclass(frozen=True)
class Submit(Body):
    TYPE: ClassVar[str] = "submit"
    spec: JobSpec = None  # type: ignore[assignment]  # required; checked in decode
    # True: check the spec exactly as a submit would, queue nothing; the reply is `ok`
    # with the output path the job would get (a batch is checked whole before any is queued).
    dry_run: bool = False


@dataclass(frozen=True)
class Cancel(Body):
    TYPE: ClassVar[str] = "cancel"  # header "job" names the job


@dataclass(frozen=True)
class ListJobs(Body):
    TYPE: ClassVar[str] = "list"
    states: list[str] | None = None  # JobState values
    limit: int = 100  # 1..MAX_LIST
    offset: int = 0  # jobs to skip (newest first): pages are offset, offset + limit, ...
    batch: str | None = None  # only this batch's jobs, in the order they were queued


MAX_LIST = 1000


@dataclass(frozen=True)
class Status(Body):
    TYPE: ClassVar[str] = "status"  # header "job" names the job


@dataclass(frozen=True)
class Subscribe(Body):
    TYPE: ClassVar[str] = "subscribe"  # header "job" names the job
    from_seq: int = 1  # first event sequence number wanted (1 = everything)
    frames: bool = True  # False: frame events arrive without their pixel frame
    proxies: bool = True  # False: proxy events arrive without their image frame


@dataclass(frozen=True)
class Unsubscribe(Body):
    TYPE: ClassVar[str] = "unsubscribe"


@dataclass(frozen=True)
class Fetch(Body):
    TYPE: ClassVar[str] = "fetch"  # header "job" names the job
    what: str = "outputs"  # "outputs" or "frames"
    first: int | None = None  # source frame numbers, inclusive; None = from the start
    last: int | None = None
    variant: int = 0  # frames: which prompt's (0 = params.prompt, v = params.variants[v-1])


@dataclass(frozen=True)
class Reorder(Body):
    TYPE: ClassVar[str] = "reorder"  # header "job" names a queued job
    priority: int | None = None
    position: int | None = None  # 0 = next to run


@dataclass(frozen=True)
class Retry(Body):
    """A failed or cancelled job is queued again (same id, same output name): a `requeued`
    event follows its terminal event, and a new attempt's events follow that."""

    TYPE: ClassVar[str] = "retry"  # header "job" names the job


@dataclass(frozen=True)
class QueueControl(Body):
    """The whole queue: "pause" (the running job finishes, nothing new starts; kept across
    restarts), "resume", or None to just report. Reply: `queue_state`."""

    TYPE: ClassVar[str] = "queue"
    action: str | None = None


@dataclass(frozen=True)
class ListFiles(Body):
    """A finished job's output files with their sizes and SHA-256 (reply `file_list`)."""

    TYPE: ClassVar[str] = "files"  # header "job" names the job


@dataclass(frozen=True)
class Read(Body):
    """One chunk of one output file (reply `chunk`): the client pulls, one chunk per
    request, so a dropped download resumes from any byte offset."""

    TYPE: ClassVar[str] = "read"  # header "job" names the job
    name: str = ""  # one of the `files` reply's names
    offset: int = 0
    length: int = MAX_CHUNK_BYTES  # at most MAX_CHUNK_BYTES
class Delete(Body):
    """Remove a finished, failed, cancelled or queued job and what the server stores for
    it (events, frames, proxies). The job's outputs are the user's files: never touched."""

    TYPE: ClassVar[str] = "delete"  # header "job" names the job


@dataclass(frozen=True)
class Stats(Body):
    """Request (empty body) and reply: what the server holds for its clients right now."""

    TYPE: ClassVar[str] = "stats"
    clients: int = 0  # clients the server knows (said anything within the liveness window)
    subscriptions: int = 0
    fetches: int = 0  # open `fetch` frame streams
    queued_bytes: int = 0  # bytes handed to ZeroMQ for all clients and not yet written to their connections
    peak_client_queued_bytes: int = 0  # the most any one client has had queued since the server started
    peak_queued_bytes: int = 0  # the most queued for all clients together since the server started
    rss_bytes: int = 0  # the server process's resident memory (0 where unknown)


@dataclass(frozen=True)
class Heartbeat(Body):
    """Sent by both ends. The server's carries its instance id: when it changes, the
    server restarted and the client must subscribe again."""

    TYPE: ClassVar[str] = "heartbeat"
    server_id: str | None = None
    # In the server's reply: False when the server did not know this client (it restarted,
    # or forgot a client silent for too long): the client must subscribe again.
    known: bool | None = None


# --- replies (server -> client, same rid as the request) ---


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_queue: int = 1000
    max_frames: int = 100_000
    heartbeat_s: float = HEARTBEAT_INTERVAL_S
    heartbeat_liveness: int = HEARTBEAT_LIVENESS
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    max_string_chars: int = MAX_STRING_CHARS
    max_list: int = MAX_LIST
    max_clients: int = 64
    max_subscriptions: int = 32  # per client
    max_fetches: int = 4  # open frame fetches per client
    client_queue_bytes: int = 32 << 20  # per client: past it, its streams pause and resume from the store
    total_queue_bytes: int = 128 << 20  # all clients together
    # Uploaded frames (docs/protocol.md, "Jobs whose source is uploaded frames"):
    max_upload_message_bytes: int = DEFAULT_MAX_FRAME_BYTES  # one `upload_frames` message, all its frames
    max_upload_bytes: int = 16 << 30  # pixels of all uploads the server holds together
    upload_keep_s: float = 86400.0  # an upload untouched this long (and used by no queued or running job) is deleted


@dataclass(frozen=True)
class Welcome(Body):
    TYPE: ClassVar[str] = "welcome"
    server: str = ""
    server_id: str = ""
    version: int = PROTOCOL_VERSION
    versions: list[int] = field(default_factory=lambda: list(SUPPORTED_VERSIONS))
    capabilities: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    default_model: str = ""
    device: str = ""
    engine_state: str = ""  # "loading", "ready", "failed: ..."
    limits: Limits = field(default_factory=Limits)
    allowed_output_dirs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class JobInfo:
    id: str
    state: str  # a JobState (a plain string on the wire; JobState members compare equal to it)
    created: float
    updated: float
    input: str
    prompt: str
    frames: str | None
    output: str | None
    priority: int
    position: int | None  # place in the queue (0 = next), None when not queued
    last_seq: int
    attempts: int
    outputs: list[str]
    error: dict[str, Any] | None
    progress: dict[str, Any] | None  # the body of the last progress event
    batch: str | None = None
    name: str | None = None  # the clip's name ({clip} of the output name)
    row: int | None = None
    n_frames: int | None = None
    variants: list[str] = field(default_factory=list)  # params.variants: the prompts after `prompt`


@dataclass(frozen=True)
class JobStatus(Body):
    TYPE: ClassVar[str] = "job"
    info: JobInfo = None  # type: ignore[assignment]


@dataclass(frozen=True)
class JobList(Body):
    TYPE: ClassVar[str] = "jobs"
    jobs: list[JobInfo] = field(default_factory=list)
    more: bool = False  # more jobs match: ask again with offset + len(jobs)


@dataclass(frozen=True)
class Subscribed(Body):
    TYPE: ClassVar[str] = "subscribed"
    state: str = ""  # a JobState
    last_seq: int = 0  # events 1..last_seq exist now; replay follows, then live events


@dataclass(frozen=True)
class Unsubscribed(Body):
    """Sent with a subscription's rid when it ends before the job's terminal event:
    `reason` is "replaced" (a newer subscribe to the same job on this connection took
    over) or "unsubscribed" (the client asked)."""

    TYPE: ClassVar[str] = "unsubscribed"
    reason: str = ""


@dataclass(frozen=True)
class Outputs(Body):
    TYPE: ClassVar[str] = "outputs"
    state: str = ""  # a JobState
    paths: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class QueueState(Body):
    TYPE: ClassVar[str] = "queue_state"
    paused: bool = False
    running: str | None = None  # the running job's id
    queued: int = 0


@dataclass(frozen=True)
class FileInfo:
    name: str  # relative path: the movie's file name, or "SEQUENCE_FOLDER/FRAME.png"
    size: int
    sha256: str  # hex digest of the whole file


@dataclass(frozen=True)
class Files(Body):
    TYPE: ClassVar[str] = "file_list"
    state: str = ""  # a JobState
    files: list[FileInfo] = field(default_factory=list)  # empty unless the job is done


@dataclass(frozen=True)
class Chunk(Body):
    """Bytes [offset, offset + len(blob)) of file `name`; one binary frame follows."""

    TYPE: ClassVar[str] = "chunk"
    BLOBS: ClassVar[int] = 1
    name: str = ""
    offset: int = 0
    size: int = 0  # the whole file's size
    eof: bool = False  # this chunk ends the file


@dataclass(frozen=True)
class FetchEnd(Body):
    TYPE: ClassVar[str] = "fetch_end"
    count: int = 0


@dataclass(frozen=True)
class Ok(Body):
    TYPE: ClassVar[str] = "ok"
    detail: str = ""


@dataclass(frozen=True)
class Error(Body):
    TYPE: ClassVar[str] = "error"
    code: str = ""
    message: str = ""
    hint: str = ""
    field: str | None = None


# --- job events (server -> client; header carries job and seq) ---


@dataclass(frozen=True)
class Accepted(Body):
    TYPE: ClassVar[str] = "accepted"
    position: int = 0
    state: str = JobState.QUEUED


@dataclass(frozen=True)
class Progress(Body):
    TYPE: ClassVar[str] = "progress"
    stage: str = ""  # a Stage; they follow STAGE_ORDER
    step: int = 0
    total: int = 0
    frames_done: int = 0
    frames_total: int = 0
    elapsed_s: float = 0.0
    eta_s: float | None = None


@dataclass(frozen=True)
class Proxy(Body):
    """A small image: a keyframe preview while denoising ("preview"), or a downscaled
    finished frame ("frame"). One binary frame follows: the encoded image."""

    TYPE: ClassVar[str] = "proxy"
    BLOBS: ClassVar[int] = 1
    kind: str = "frame"  # "preview" or "frame"
    frame: int = 0  # source frame number
    step: int | None = None  # denoising step of a preview
    width: int = 0
    height: int = 0
    format: str = "jpeg"  # "jpeg", "png" or "raw" (width*height*3 bytes, RGB, top row first)
    omitted: bool = False  # True: the subscriber asked for no image; no binary frame follows
    variant: int = 0  # which prompt's picture (0 = params.prompt, v = params.variants[v-1])


@dataclass(frozen=True)
class Frame(Body):
    """A full-resolution frame at the source size. One binary frame follows: the pixels,
    C order, shape (height, width, channels), dtype as named (row-major, no padding)."""

    TYPE: ClassVar[str] = "frame"
    BLOBS: ClassVar[int] = 1
    frame: int = 0  # source frame number
    shape: list[int] = field(default_factory=list)
    dtype: str = "uint8"
    omitted: bool = False
    variant: int = 0  # which prompt's picture (0 = params.prompt, v = params.variants[v-1])


@dataclass(frozen=True)
class VariantOutputs:
    """One prompt of a job and the outputs written for it (`done.variants`, in variant order)."""

    prompt: str
    outputs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Done(Body):
    TYPE: ClassVar[str] = "done"
    outputs: list[str] = field(default_factory=list)
    frames: int = 0
    first_frame: int = 0
    elapsed_s: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)
    files: list[FileInfo] = field(default_factory=list)  # the outputs for download (`files`, `read`)
    # What the output lacks that the user should hear about (e.g. source audio that cannot be decoded).
    warnings: list[str] = field(default_factory=list)
    # Each prompt's outputs, one entry per prompt in variant order (one for a one-prompt job);
    # `outputs` stays the flat list of them all, for clients that know one prompt only.
    variants: list[VariantOutputs] = field(default_factory=list)


@dataclass(frozen=True)
class Failed(Body):
    TYPE: ClassVar[str] = "failed"
    code: str = ""
    message: str = ""
    hint: str = ""


@dataclass(frozen=True)
class Cancelled(Body):
    TYPE: ClassVar[str] = "cancelled"
    reason: str = ""


@dataclass(frozen=True)
class Requeued(Body):
    """The job was interrupted (server restart) and runs again; already sent frames are
    not sent twice."""

    TYPE: ClassVar[str] = "requeued"
    attempt: int = 0
    reason: str = ""


@dataclass(frozen=True)
class Probe(Body):
    """Describe a media file on the server's machine; answered with `clip`."""

    TYPE: ClassVar[str] = "probe"
    input: str = ""  # absolute path on the server's machine


@dataclass(frozen=True)
class Clip(Body):
    """The reply to `probe`: the facts `tokenflow probe --json` prints (docs/protocol.md)."""

    TYPE: ClassVar[str] = "clip"
    facts: dict[str, Any] = field(default_factory=dict)


# --- uploaded frames (a source without a file: an OpenFX host, any client with pixels) ---

UPLOAD_DTYPES = {"uint8": 1, "uint16": 2, "float32": 4}  # sample type -> bytes per sample (little-endian)
UPLOAD_CHANNELS = (1, 3, 4)  # a matte (one channel), RGB, RGBA
MAX_UPLOAD_SIDE = 16384
MAX_UPLOAD_FRAME_NUMBER = 99_999_999


@dataclass(frozen=True)
class UploadOpen(Body):
    """Describe an upload (or find it again): answered with `upload_state`, which lists the
    frames the server already holds. The client names the upload; opening the same name
    with the same description again is how a reconnecting client resumes."""

    TYPE: ClassVar[str] = "upload_open"
    # Every field is required: a description is compared whole when the upload is opened again.
    upload: str  # client-chosen id, [A-Za-z0-9_-]{1,64}
    width: int
    height: int
    channels: int  # 1 (a matte's one channel), 3 (RGB) or 4 (RGBA)
    dtype: str  # "uint8", "uint16" or "float32", little-endian
    frame_rate: str  # exact: "24", "25", "30000/1001"
    first: int  # the host's frame number of the first frame
    count: int  # frames first .. first + count - 1


@dataclass(frozen=True)
class UploadPart:
    """Bytes [offset, offset + len(blob)) of one frame's pixel buffer; its blob is the
    binary frame at the same position after the header."""

    frame: int  # the host's frame number
    offset: int  # 0, or the bytes of this frame sent so far (parts of a frame come in order)
    end: bool  # this part ends the frame: offset + len(blob) must be the frame's size
    crc32: int  # CRC-32 (zlib/PNG: reflected 0xEDB88320, init and final xor 0xFFFFFFFF) of the blob


@dataclass(frozen=True)
class UploadFrames(Body):
    """Pixels: one binary frame per part, in the order of `parts`. Answered with `upload_state`."""

    TYPE: ClassVar[str] = "upload_frames"
    BLOBS: ClassVar[int] = -1  # as many as `parts`
    upload: str
    parts: list[UploadPart]


@dataclass(frozen=True)
class UploadDelete(Body):
    """Remove an upload now (reply `ok`); refused with `upload_in_use` while a queued or running job reads it."""

    TYPE: ClassVar[str] = "upload_delete"
    upload: str


@dataclass(frozen=True)
class UploadState(Body):
    """What the server holds of an upload (reply to `upload_open` and `upload_frames`)."""

    TYPE: ClassVar[str] = "upload_state"
    upload: str = ""
    frame_bytes: int = 0  # one frame's size: width * height * channels * bytes per sample
    have: list[list[int]] = field(default_factory=list)  # complete frames as [first, last] runs, ascending
    missing: int = 0  # frames not complete yet
    complete: bool = False
    digest: str | None = None  # hex SHA-256 of the whole upload once complete (results are keyed by it)
    expires_s: float = 0.0  # seconds until the server may delete it if nothing touches it


REQUESTS: tuple[type[Body], ...] = (
    Hello, Submit, Cancel, ListJobs, Status, Subscribe, Unsubscribe, Fetch, Reorder, Heartbeat, Delete,
    Retry, QueueControl, ListFiles, Read, Probe, Stats, UploadOpen, UploadFrames, UploadDelete,
)
REPLIES: tuple[type[Body], ...] = (
    Welcome, JobStatus, JobList, Subscribed, Unsubscribed, Outputs, FetchEnd, Ok, Error, Heartbeat,
    QueueState, Files, Chunk, Clip, Stats, UploadState,
)
EVENTS: tuple[type[Body], ...] = (
    Accepted, Progress, Proxy, Frame, Done, Failed, Cancelled, Requeued,
)
TERMINAL_EVENTS = (Done.TYPE, Failed.TYPE, Cancelled.TYPE)
# Requests whose header must name a job.
JOB_REQUESTS = frozenset(t.TYPE for t in (Cancel, Status, Subscribe, Unsubscribe, Fetch, Reorder, Delete, Retry,
                                          ListFiles, Read))

_BY_TYPE: dict[str, type[Body]] = {}
for _cls in (*REQUESTS, *REPLIES, *EVENTS):
    _BY_TYPE[_cls.TYPE] = _cls
REQUEST_TYPES = frozenset(c.TYPE for c in REQUESTS)


# ---------------------------------------------------------------------------
# Envelope, encode, decode
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    body: Body
    rid: int | None = None
    job: str | None = None
    seq: int | None = None
    blobs: tuple = ()  # bytes-like objects (bytes, memoryview, numpy arrays)
    version: int = PROTOCOL_VERSION

    @property
    def type(self) -> str:
        return self.body.TYPE


def to_wire(obj: Any) -> Any:
    """A body (or nested dataclass) as plain msgpack-able values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_wire(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_wire(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_wire(v) for k, v in obj.items()}
    return obj


def encode(env: Envelope) -> list:
    """Frames to hand to `socket.send_multipart(..., copy=False)`."""
    return encode_raw(env.body.TYPE, to_wire(env.body), rid=env.rid, job=env.job, seq=env.seq,
                      blobs=env.blobs, version=env.version)


def encode_raw(type_: str, body: dict, *, rid: int | None = None, job: str | None = None,
               seq: int | None = None, blobs: tuple | list = (), version: int = PROTOCOL_VERSION) -> list:
    """Frames for a body that is already plain values (e.g. an event read back from the store)."""
    header = {"v": version, "type": type_, "rid": rid, "job": job, "seq": seq, "body": body}
    return [msgpack.packb(header, use_bin_type=True), *blobs]


def decode(
    frames: list,
    *,
    strict: bool = True,
    max_bytes: int | None = DEFAULT_MAX_REQUEST_BYTES,
    allowed: frozenset[str] | None = None,
    max_upload_bytes: int | None = None,
) -> Envelope:
    """Parse and validate one message. Raises ProtocolError naming what is wrong.

    strict: reject unknown body fields (the server does this for requests; clients
    pass strict=False so a newer server may add fields). allowed: message types
    accepted here (the server passes REQUEST_TYPES). max_upload_bytes: the larger size
    an `upload_frames` message may have (it carries pixels; nothing else does).
    """
    if not frames:
        raise ProtocolError("bad_message", "Empty message: expected a msgpack header frame.")
    sizes = [len(memoryview(f)) if not isinstance(f, (bytes, bytearray)) else len(f) for f in frames]
    if max_bytes is not None and max_upload_bytes is not None and sum(sizes) > max_bytes:
        max_bytes = max_upload_bytes if _is_upload(frames[0], sizes[0], max_bytes) else max_bytes
    if max_bytes is not None and sum(sizes) > max_bytes:
        # Answer with the request's rid when its header alone is readable, so the client
        # can match the refusal to the request.
        header = _read_header(frames[0], sizes[0]) if sizes[0] <= max_bytes else None
        rid = header.get("rid") if isinstance(header, dict) else None
        raise ProtocolError("too_large", f"Message of {sum(sizes)} bytes exceeds the limit of {max_bytes} bytes.",
                            rid=rid if _is_int(rid) and 0 <= rid <= _MAX_INT else None)
    try:
        header = _read_header(frames[0], sizes[0])
    except Exception as exc:  # msgpack raises many types on garbage; none may escape
        raise ProtocolError("bad_header", f"The header frame is not valid msgpack ({type(exc).__name__}).") from None
    if not isinstance(header, dict):
        raise ProtocolError("bad_header", "The header must be a msgpack map.")
    rid = header.get("rid")
    if not (rid is None or (_is_int(rid) and 0 <= rid <= _MAX_INT)):
        raise ProtocolError("bad_field", "rid must be a non-negative integer or null.", field="rid")

    def fail(code: str, message: str, fld: str | None = None) -> ProtocolError:
        return ProtocolError(code, message, field=fld, rid=rid)

    version = header.get("v")
    if not _is_int(version):
        raise fail("bad_field", "Header field 'v' (protocol version) is missing or not an integer.", "v")
    if version not in SUPPORTED_VERSIONS:
        raise fail(
            "bad_version",
            f"Protocol version {version} is not supported; this side speaks {list(SUPPORTED_VERSIONS)}.",
            "v",
        )
    unknown = set(header) - {"v", "type", "rid", "job", "seq", "body"}
    if strict and unknown:
        raise fail("bad_field", f"Unknown header field(s): {sorted(unknown)}.", sorted(unknown)[0])
    mtype = header.get("type")
    if not isinstance(mtype, str):
        raise fail("bad_field", "Header field 'type' is missing or not a string.", "type")
    cls = _BY_TYPE.get(mtype)
    if cls is None or (allowed is not None and mtype not in allowed):
        raise fail("unknown_type", f"Unknown message type {mtype!r}.", "type")
    job = header.get("job")
    if job is not None and not (isinstance(job, str) and _JOB_ID.match(job)):
        raise fail("bad_field", "Header field 'job' must be a job id (letters, digits, '-', '_') or null.", "job")
    if allowed is not None and mtype in JOB_REQUESTS and job is None:
        raise fail("bad_field", f"A {mtype!r} request must name a job in the header field 'job'.", "job")
    seq = header.get("seq")
    if not (seq is None or (_is_int(seq) and 0 <= seq <= _MAX_INT)):
        raise fail("bad_field", "Header field 'seq' must be a non-negative integer or null.", "seq")
    body_raw = header.get("body", {})
    if not isinstance(body_raw, dict):
        raise fail("bad_field", "Header field 'body' must be a map.", "body")
    try:
        body = _build(cls, body_raw, "body", strict)
        _checks(body)
    except _FieldError as exc:
        raise fail("bad_field", str(exc), exc.path) from None
    blobs = tuple(frames[1:])
    expected = 0 if getattr(body, "omitted", False) else cls.BLOBS
    if isinstance(body, UploadFrames):
        expected = len(body.parts)
    if len(blobs) != expected:
        raise fail("bad_message", f"A {mtype!r} message carries {expected} binary frame(s), got {len(blobs)}.")
    return Envelope(body=body, rid=rid, job=job, seq=seq, blobs=blobs, version=version)


def _is_upload(raw: Any, size: int, limit: int) -> bool:
    """The header (when within `limit` and readable) says `upload_frames`."""
    if size > limit:
        return False
    try:
        header = _read_header(raw, size)
    except Exception:
        return False
    return isinstance(header, dict) and header.get("type") == UploadFrames.TYPE


def _read_header(raw: Any, size: int) -> Any:
    limit = max(size, 1)
    return msgpack.unpackb(bytes(raw), raw=False, strict_map_key=True, max_str_len=limit, max_bin_len=limit,
                           max_array_len=limit, max_map_len=limit, max_ext_len=0)


# ---------------------------------------------------------------------------
# Validation against type hints
# ---------------------------------------------------------------------------


class _FieldError(Exception):
    def __init__(self, message: str, path: str):
        super().__init__(message)
        self.path = path


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _build(cls: type, data: dict, path: str, strict: bool) -> Any:
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown and strict:
        raise _FieldError(f"Unknown field {path}.{unknown[0]}.", f"{path}.{unknown[0]}")
    kwargs = {}
    for name, f in fields.items():
        where = f"{path}.{name}"
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], where, strict)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _FieldError(f"Missing required field {where}.", where)
        elif f.default is None and not _optional(hints[name]):
            raise _FieldError(f"Missing required field {where}.", where)
    return cls(**kwargs)


# `Optional[X]` and `X | None` are different objects at run time; both mean the same here.
_UNION_ORIGINS = (Union, types.UnionType)


def _optional(tp: Any) -> bool:
    return typing.get_origin(tp) in _UNION_ORIGINS and type(None) in typing.get_args(tp)


def _coerce(value: Any, tp: Any, path: str, strict: bool) -> Any:
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in _UNION_ORIGINS:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], path, strict)
    if origin is list:
        if not isinstance(value, list):
            raise _FieldError(f"{path} must be a list.", path)
        (item,) = typing.get_args(tp)
        return [_coerce(v, item, f"{path}[{i}]", strict) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _FieldError(f"{path} must be a map.", path)
        _, vt = typing.get_args(tp)
        return {k: _coerce(v, vt, f"{path}.{k}", strict) for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _FieldError(f"{path} must be a map.", path)
        return _build(tp, value, path, strict)
    if tp is bool:
        if not isinstance(value, bool):
            raise _FieldError(f"{path} must be true or false.", path)
        return value
    if tp is int:
        if not _is_int(value) or abs(value) > _MAX_INT:
            raise _FieldError(f"{path} must be an integer.", path)
        return value
    if tp is float:
        if not (_is_int(value) or isinstance(value, float)) or not math.isfinite(value):
            raise _FieldError(f"{path} must be a finite number.", path)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _FieldError(f"{path} must be a string.", path)
        if strict and len(value) > MAX_STRING_CHARS:
            raise _FieldError(f"{path} is {len(value)} characters long; the limit is {MAX_STRING_CHARS}.", path)
        return value
    raise _FieldError(f"{path} has an unsupported type.", path)  # a bug in this module


def _strings(value: Any) -> bool:
    """A list parameter's value (e.g. `loras`): at most 64 strings, each within the string limit."""
    return (isinstance(value, (list, tuple)) and len(value) <= 64
            and all(isinstance(item, str) and len(item) <= MAX_STRING_CHARS for item in value))


def _checks(body: Body) -> None:
    """Range checks that type hints cannot say."""

    def need(ok: bool, message: str, path: str) -> None:
        if not ok:
            raise _FieldError(message, path)

    if isinstance(body, Submit):
        s = body.spec
        if s.upload is None:
            need(bool(s.input.strip()), "body.spec.input must name the source media file.", "body.spec.input")
        else:
            need(bool(_UPLOAD_ID.match(s.upload)), "body.spec.upload must be an upload id (letters, digits, '-', "
                 "'_'; 1 to 64).", "body.spec.upload")
            need(s.input == "", "body.spec.input must be \"\" when body.spec.upload names the source.",
                 "body.spec.input")
        need(16 <= s.proxy_size <= 1024, "body.spec.proxy_size must be between 16 and 1024.", "body.spec.proxy_size")
        need(s.proxy_format in PROXY_FORMATS, "body.spec.proxy_format must be 'jpeg', 'png' or 'raw'.", "body.spec.proxy_format")
        need(-1000 <= s.priority <= 1000, "body.spec.priority must be between -1000 and 1000.", "body.spec.priority")
        for option in edit_params.EDIT_OPTIONS:  # a prompt's length first: its sentence says why (bridge/wire/edit_params.py)
            too_long = edit_params.too_long(option, s.params.get(option.name), lambda o: f"body.spec.params.{o.name}")
            need(too_long is None, too_long or "", f"body.spec.params.{option.name}")
        for k, v in s.params.items():
            need(
                v is None or isinstance(v, (bool, int, float, str)) or _strings(v),
                f"body.spec.params.{k} must be a number, string, boolean or list of strings.",
                f"body.spec.params.{k}",
            )
            need(
                not isinstance(v, str) or len(v) <= MAX_STRING_CHARS,
                f"body.spec.params.{k} is {len(v) if isinstance(v, str) else 0} characters long; "
                f"the limit is {MAX_STRING_CHARS}.",
                f"body.spec.params.{k}",
            )
        need(s.preset is None or 0 < len(s.preset) <= 64, "body.spec.preset must name an export preset.",
             "body.spec.preset")
        need(s.start_number is None or 0 <= s.start_number <= 99_999_999,
             "body.spec.start_number must be between 0 and 99999999.", "body.spec.start_number")
        need(
            s.client_token is None or 0 < len(s.client_token) <= 128,
            "body.spec.client_token must be 1 to 128 characters.",
            "body.spec.client_token",
        )
        for name in ("destination", "name_template", "name", "batch"):
            value = getattr(s, name)
            need(value is None or 0 < len(value) <= 1024, f"body.spec.{name} must be 1 to 1024 characters.",
                 f"body.spec.{name}")
        # The batch names a file the server writes (summary.filename): a plain name, never a path.
        need(s.batch is None or is_batch_name(s.batch), "body.spec.batch must be 1 to 64 letters, digits, '.', '_' "
             "or '-', not starting with '.' and without '..' (it names the batch's summary file).", "body.spec.batch")
        need(s.batch_jobs is None or (s.batch is not None and 1 <= s.batch_jobs <= 1_000_000),
             "body.spec.batch_jobs must be between 1 and 1000000, with a batch.", "body.spec.batch_jobs")
        need(s.row is None or 0 <= s.row <= 1_000_000, "body.spec.row must be between 0 and 1000000.",
             "body.spec.row")
    elif isinstance(body, Subscribe):
        need(body.from_seq >= 1, "body.from_seq must be at least 1.", "body.from_seq")
    elif isinstance(body, Fetch):
        need(body.what in ("outputs", "frames"), "body.what must be 'outputs' or 'frames'.", "body.what")
        need(0 <= body.variant <= edit_params.MAX_VARIANTS, f"body.variant must be between 0 and "
             f"{edit_params.MAX_VARIANTS} (0 = params.prompt, v = params.variants[v-1]).", "body.variant")
        need(
            body.first is None or body.last is None or body.first <= body.last,
            "body.first must not be after body.last.",
            "body.first",
        )
    elif isinstance(body, ListJobs):
        need(1 <= body.limit <= MAX_LIST, f"body.limit must be between 1 and {MAX_LIST}.", "body.limit")
        need(body.offset >= 0, "body.offset must be 0 or more.", "body.offset")
        for s in body.states or ():
            need(s in JOB_STATES, f"body.states: unknown state {s!r}; known: {list(JOB_STATES)}.", "body.states")
    elif isinstance(body, Reorder):
        need(
            body.priority is not None or body.position is not None,
            "reorder needs body.priority or body.position.",
            "body",
        )
        need(body.position is None or body.position >= 0, "body.position must be 0 or more.", "body.position")
        need(
            body.priority is None or -1000 <= body.priority <= 1000,
            "body.priority must be between -1000 and 1000.",
            "body.priority",
        )
    elif isinstance(body, QueueControl):
        need(body.action in (None, "pause", "resume"), "body.action must be 'pause', 'resume' or null.",
             "body.action")
    elif isinstance(body, Read):
        need(0 < len(body.name) <= 4096, "body.name must name one of the job's files.", "body.name")
        need(body.offset >= 0, "body.offset must be 0 or more.", "body.offset")
        need(1 <= body.length <= MAX_CHUNK_BYTES, f"body.length must be between 1 and {MAX_CHUNK_BYTES}.",
             "body.length")
    elif isinstance(body, Probe):
        need(len(body.input) <= 4096, "body.input must be at most 4096 characters.", "body.input")
    elif isinstance(body, (UploadOpen, UploadFrames, UploadDelete)):
        need(bool(_UPLOAD_ID.match(body.upload)), "body.upload must be an upload id (letters, digits, '-', '_'; "
             "1 to 64).", "body.upload")
        if isinstance(body, UploadOpen):
            for name in ("width", "height"):
                need(1 <= getattr(body, name) <= MAX_UPLOAD_SIDE, f"body.{name} must be between 1 and "
                     f"{MAX_UPLOAD_SIDE}.", f"body.{name}")
            need(body.channels in UPLOAD_CHANNELS, "body.channels must be 1 (a matte), 3 (RGB) or 4 (RGBA).",
                 "body.channels")
            need(body.dtype in UPLOAD_DTYPES, f"body.dtype must be one of {', '.join(UPLOAD_DTYPES)}.", "body.dtype")
            need(bool(_RATE.match(body.frame_rate)) and _rate_positive(body.frame_rate),
                 "body.frame_rate must be a positive exact rate: \"24\", \"30000/1001\".", "body.frame_rate")
            need(0 <= body.first <= MAX_UPLOAD_FRAME_NUMBER, f"body.first must be between 0 and "
                 f"{MAX_UPLOAD_FRAME_NUMBER}.", "body.first")
            need(body.count >= 1 and body.first + body.count - 1 <= MAX_UPLOAD_FRAME_NUMBER,
                 f"body.count must be 1 or more, the last frame at most {MAX_UPLOAD_FRAME_NUMBER}.", "body.count")
        if isinstance(body, UploadFrames):
            need(len(body.parts) >= 1, "body.parts must list at least one part.", "body.parts")
            for i, part in enumerate(body.parts):
                need(part.offset >= 0, f"body.parts[{i}].offset must be 0 or more.", f"body.parts[{i}].offset")
                need(0 <= part.crc32 <= 0xFFFFFFFF, f"body.parts[{i}].crc32 must be an unsigned 32-bit integer.",
                     f"body.parts[{i}].crc32")
    elif isinstance(body, Hello):
        need(len(body.client) <= 256, "body.client must be at most 256 characters.", "body.client")
