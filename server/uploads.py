"""Uploaded frames: a job's source that arrives as pixels (docs/protocol.md, "Jobs whose
source is uploaded frames").

An upload lives in the server's data folder, `DATA_DIR/uploads/ID/`: `upload.json`
(the description and owner), `frames/NNNNNNNN.raw` (one file per complete frame, exactly
its pixel buffer) and `digests.txt` (a line "FRAME SHA256" per complete frame, appended
after the frame's file is in place). A frame is complete only when both are there, so a
crash at any point loses at most the frame being written; a frame's partial bytes
(`.part`) live for one server run only, and a client re-sends such a frame whole.

The front's thread calls `open` and `receive` (a message is at most
`max_upload_message_bytes`: writing it is a page-cache copy, never a wait on the GPU);
the worker's thread reads complete frames, which are never changed once complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bridge.display import format_bytes
from bridge.wire import protocol as p
from server.bounds import DISK_MARGIN_BYTES
from server.disk import is_disk_full
from server.resolved_job import LOCAL_OWNER

log = logging.getLogger("tokenflow.server")

UPLOADS_DIR = "uploads"
META = "upload.json"
DIGESTS = "digests.txt"
FRAMES = "frames"


class UploadError(Exception):
    """A refusal with its wire code; `field` names the offending field."""

    def __init__(self, code: str, message: str, hint: str = "", field: str | None = None):
        super().__init__(message)
        self.code, self.message, self.hint, self.field = code, message, hint, field


@dataclass(frozen=True)
class Description:
    """What `upload_open` said; two opens describe the same upload when these are equal."""

    upload: str
    width: int
    height: int
    channels: int
    dtype: str
    frame_rate: str
    first: int
    count: int

    @classmethod
    def of(cls, body: p.UploadOpen) -> Description:
        return cls(upload=body.upload, width=body.width, height=body.height, channels=body.channels,
                   dtype=body.dtype, frame_rate=body.frame_rate, first=body.first, count=body.count)

    @property
    def last(self) -> int:
        return self.first + self.count - 1

    @property
    def frame_bytes(self) -> int:
        return self.width * self.height * self.channels * p.UPLOAD_DTYPES[self.dtype]

    @property
    def total_bytes(self) -> int:
        return self.frame_bytes * self.count


def frame_path(folder: Path, frame: int) -> Path:
    return folder / FRAMES / f"{frame:08d}.raw"


def upload_digest(desc: Description, digests: dict[int, str]) -> str:
    """SHA-256 of the description (all but the id: the same pixels under another id are the
    same source) and every frame's digest in frame order."""
    h = hashlib.sha256(b"tokenflow-upload-1\n")
    described = {k: v for k, v in asdict(desc).items() if k != "upload"}
    h.update(json.dumps(described, sort_keys=True).encode())
    for frame in range(desc.first, desc.last + 1):
        h.update(f"\n{frame} {digests[frame]}".encode())
    return h.hexdigest()


def runs(frames: Iterable[int]) -> list[list[int]]:
    """Sorted frame numbers as inclusive [first, last] runs."""
    out: list[list[int]] = []
    for n in sorted(frames):
        if out and out[-1][1] == n - 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return out


@dataclass
class _Upload:
    desc: Description
    owner: str
    folder: Path
    touched: float
    have: dict[int, str] = field(default_factory=dict)  # complete frame -> its SHA-256
    partial: dict[int, tuple[int, Any]] = field(default_factory=dict)  # frame -> (bytes, hasher)

    def digest(self) -> str | None:
        return upload_digest(self.desc, self.have) if len(self.have) == self.desc.count else None


class Uploads:
    """Every upload the server holds, by id. Thread-safe."""

    def __init__(self, data_root: Path, limits: p.Limits, free_space: Callable[[Path], int],
                 clock: Callable[[], float] = time.time):
        self.root = data_root / UPLOADS_DIR
        self.limits = limits
        self.free_space = free_space
        self.clock = clock
        self._lock = threading.Lock()
        self._uploads: dict[str, _Upload] = {}
        self.root.mkdir(parents=True, exist_ok=True)
        for folder in sorted(self.root.iterdir()):
            upload = _load(folder)
            if upload is not None:
                self._uploads[upload.desc.upload] = upload

    # --- requests ---

    def open(self, body: p.UploadOpen, owner: str = LOCAL_OWNER) -> p.UploadState:
        desc = Description.of(body)
        with self._lock:
            upload = self._uploads.get(desc.upload)
            if upload is not None:
                self._check_owner(upload, owner, "body.upload")
                if upload.desc != desc:
                    raise UploadError(
                        "upload_mismatch", f"Upload {desc.upload} exists with another description "
                        f"({_describe(upload.desc)}).", "Use a new upload id for other frames, or delete the old "
                        "upload first (upload_delete).", "body.upload")
                self._touch(upload)
                return self._state(upload)
            self._admit(desc)
            folder = self.root / desc.upload
            (folder / FRAMES).mkdir(parents=True, exist_ok=True)
            upload = _Upload(desc, owner, folder, self.clock())
            _write_meta(upload)
            (folder / DIGESTS).touch()
            self._touch(upload)  # the description's time is the upload's, across restarts
            self._uploads[desc.upload] = upload
            return self._state(upload)

    def _admit(self, desc: Description) -> None:
        """The budgets an upload is held to, checked before any pixel is sent."""
        if desc.count > self.limits.max_frames:
            raise UploadError("bad_range", f"{desc.count} frames exceed this server's limit of "
                              f"{self.limits.max_frames}.", "Upload and submit a shorter range, or several.",
                              "body.count")
        held = sum(u.desc.total_bytes for u in self._uploads.values())
        room = self.limits.max_upload_bytes - held
        if desc.total_bytes > room:
            fits = max(0, room // desc.frame_bytes)
            raise UploadError(
                "too_large", f"{desc.count} frames of {format_bytes(desc.frame_bytes)} each "
                f"({format_bytes(desc.total_bytes)}) do not fit the server's upload budget: "
                f"{format_bytes(max(0, room))} of {format_bytes(self.limits.max_upload_bytes)} is free, "
                f"room for {fits} such frames.",
                "Upload a shorter range (or several in turn), delete uploads you no longer need "
                "(upload_delete), or start the server with a larger budget.", "body.count")
        free = self.free_space(self.root)
        if free < desc.total_bytes + DISK_MARGIN_BYTES:
            raise UploadError("disk_full", f"The disk of the server's data folder ({self.root}) has "
                              f"{format_bytes(free)} free; this upload needs about "
                              f"{format_bytes(desc.total_bytes + DISK_MARGIN_BYTES)}.",
                              "Free some space on the server, or upload a shorter range.", "body.count")

    def receive(self, body: p.UploadFrames, blobs: tuple, owner: str = LOCAL_OWNER) -> p.UploadState:
        with self._lock:
            upload = self._get(body.upload, owner, "body.upload")
            plan = self._check_parts(upload, body.parts, blobs)
            try:
                for part, blob in plan:
                    self._write(upload, part, blob)
            except OSError as exc:
                if is_disk_full(exc):
                    raise UploadError("disk_full", f"The disk of the server's data folder ({self.root}) is full.",
                                      "Free some space on the server, then send the missing frames again.",
                                      "body.parts") from None
                raise
            self._touch(upload)
            return self._state(upload)

    def _check_parts(self, upload: _Upload, parts: list[p.UploadPart], blobs: tuple) -> list[tuple]:
        """The parts to write, after checking the whole message: one bad part refuses all of it."""
        desc, plan, seen = upload.desc, [], set()
        for i, (part, blob) in enumerate(zip(parts, blobs)):
            where = f"body.parts[{i}]"
            data = memoryview(blob).cast("B")
            if not desc.first <= part.frame <= desc.last:
                raise UploadError("bad_part", f"Frame {part.frame} is outside upload {desc.upload} "
                                  f"({desc.first}..{desc.last}).", "Send frames of the range the upload was opened "
                                  "with.", f"{where}.frame")
            if part.frame in seen:
                raise UploadError("bad_part", f"Frame {part.frame} appears twice in one message.",
                                  "Send each frame's parts in separate messages, in order.", f"{where}.frame")
            seen.add(part.frame)
            if zlib.crc32(data) != part.crc32:
                raise UploadError("bad_checksum", f"Part {i} (frame {part.frame}, {len(data)} bytes) does not match "
                                  f"its crc32 {part.crc32} (the bytes received give {zlib.crc32(data)}).",
                                  "Send the frame again; the CRC-32 is zlib's (docs/protocol.md).", f"{where}.crc32")
            if part.frame in upload.have:
                continue  # a resend of a frame held complete: nothing to do
            held = upload.partial.get(part.frame, (0, None))[0]
            if part.offset not in (0, held):
                raise UploadError("bad_part", f"Part {i} of frame {part.frame} starts at byte {part.offset}; the "
                                  f"server holds {held} bytes of it.", f"Continue at offset {held}, or send the "
                                  "frame again from offset 0.", f"{where}.offset")
            end = part.offset + len(data)
            if end > desc.frame_bytes:
                raise UploadError("bad_part", f"Part {i} runs to byte {end} of frame {part.frame}, past its "
                                  f"{desc.frame_bytes} bytes ({_describe(desc)}).", "Send exactly width * height * "
                                  "channels * bytes-per-sample bytes per frame.", f"{where}.offset")
            if part.end and end != desc.frame_bytes:
                raise UploadError("short_frame", f"Frame {part.frame} ends after {end} bytes; a frame of upload "
                                  f"{desc.upload} has {desc.frame_bytes} ({_describe(desc)}).",
                                  "Send the whole pixel buffer: rows top to bottom, no padding.", f"{where}.end")
            plan.append((part, data))
        return plan

    def _write(self, upload: _Upload, part: p.UploadPart, data: memoryview) -> None:
        final = frame_path(upload.folder, part.frame)
        partial = final.with_suffix(".part")
        if part.offset == 0:
            hasher = hashlib.sha256()
            mode = "wb"
        else:
            hasher = upload.partial[part.frame][1]
            mode = "ab"
        with open(partial, mode) as f:
            f.write(data)
        hasher.update(data)
        end = part.offset + len(data)
        if end < upload.desc.frame_bytes:
            upload.partial[part.frame] = (end, hasher)
            return
        upload.partial.pop(part.frame, None)
        os.replace(partial, final)
        digest = hasher.hexdigest()
        with open(upload.folder / DIGESTS, "a") as f:  # after the file: a listed frame is a whole frame
            f.write(f"{part.frame} {digest}\n")
        upload.have[part.frame] = digest

    def delete(self, upload_id: str, owner: str, in_use: Callable[[], set[str]]) -> int:
        """Bytes freed. Refused while a queued or running job reads the upload."""
        with self._lock:
            upload = self._get(upload_id, owner, "body.upload")
            if upload_id in in_use():
                raise UploadError("upload_in_use", f"A queued or running job reads upload {upload_id}.",
                                  "Cancel that job first, or let it finish.", "body.upload")
            return self._remove(upload)

    # --- for submit and the job ---

    def source(self, upload_id: str, owner: str, where: str = "body.spec.upload") -> tuple[Description, Path, str]:
        """(description, folder, digest) of a complete upload; refusals name `where` (the
        source's field, or body.spec.params.matte for a matte)."""
        with self._lock:
            upload = self._get(upload_id, owner, where)
            digest = upload.digest()
            if digest is None:
                missing = [n for n in range(upload.desc.first, upload.desc.last + 1) if n not in upload.have]
                raise UploadError("upload_incomplete", f"Upload {upload_id} lacks {len(missing)} of its "
                                  f"{upload.desc.count} frames (the first missing is {missing[0]}).",
                                  "Send the missing frames (upload_open lists the ones the server has), then "
                                  "submit again.", where)
            self._touch(upload)
            return upload.desc, upload.folder, digest

    def touch(self, upload_id: str) -> None:
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is not None:
                self._touch(upload)

    def sweep(self, in_use: set[str]) -> list[str]:
        """Delete uploads untouched for `upload_keep_s` that no queued or running job reads."""
        now = self.clock()
        removed = []
        with self._lock:
            for upload in list(self._uploads.values()):
                try:  # a job that read the upload touched its description (server/upload_source.py)
                    upload.touched = max(upload.touched, (upload.folder / META).stat().st_mtime)
                except OSError:
                    pass
                if upload.desc.upload not in in_use and now - upload.touched > self.limits.upload_keep_s:
                    self._remove(upload)
                    removed.append(upload.desc.upload)
        return removed

    def held_bytes(self) -> int:
        with self._lock:
            return sum(u.desc.total_bytes for u in self._uploads.values())

    # --- inside the lock ---

    def _get(self, upload_id: str, owner: str, where: str) -> _Upload:
        upload = self._uploads.get(upload_id)
        if upload is None:
            raise UploadError("unknown_upload", f"There is no upload {upload_id!r} on this server (never opened, "
                              "deleted, or expired).", "Open it again (upload_open) and send its frames.", where)
        self._check_owner(upload, owner, where)
        return upload

    @staticmethod
    def _check_owner(upload: _Upload, owner: str, where: str) -> None:
        if owner != LOCAL_OWNER and upload.owner != owner:
            raise UploadError("forbidden", f"Upload {upload.desc.upload} belongs to another client.",
                              "Choose another upload id.", where)

    def _touch(self, upload: _Upload) -> None:
        upload.touched = self.clock()
        try:
            os.utime(upload.folder / META, (upload.touched, upload.touched))  # outlives a restart
        except OSError:
            pass

    def _state(self, upload: _Upload) -> p.UploadState:
        desc = upload.desc
        left = self.limits.upload_keep_s - (self.clock() - upload.touched)
        return p.UploadState(upload=desc.upload, frame_bytes=desc.frame_bytes, have=runs(upload.have),
                             missing=desc.count - len(upload.have), complete=len(upload.have) == desc.count,
                             digest=upload.digest(), expires_s=max(0.0, left))

    def _remove(self, upload: _Upload) -> int:
        self._uploads.pop(upload.desc.upload, None)
        freed = sum(f.stat().st_size for f in upload.folder.rglob("*") if f.is_file())
        shutil.rmtree(upload.folder, ignore_errors=True)
        return freed


def _describe(desc: Description) -> str:
    return f"{desc.width}x{desc.height}, {desc.channels} channels of {desc.dtype}, frames {desc.first}..{desc.last}"


def _write_meta(upload: _Upload) -> None:
    path = upload.folder / META
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps({"description": asdict(upload.desc), "owner": upload.owner}))
    os.replace(tmp, path)


def load_description(folder: Path) -> Description:
    """The description of the upload in `folder` (for the job reading it); OSError/ValueError if gone or damaged."""
    data = json.loads((folder / META).read_text())
    return Description(**data["description"])


def _load(folder: Path) -> _Upload | None:
    """An upload as a previous server run left it: complete frames kept, partial ones removed."""
    try:
        data = json.loads((folder / META).read_text())
        desc = Description(**data["description"])
        touched = (folder / META).stat().st_mtime
        lines = (folder / DIGESTS).read_text().splitlines() if (folder / DIGESTS).exists() else []
    except (OSError, ValueError, TypeError, KeyError):
        if folder.is_dir() and not (folder / META).exists():
            log.warning("removing %s: an upload folder without its description", folder)
            shutil.rmtree(folder, ignore_errors=True)
        return None
    upload = _Upload(desc, str(data.get("owner", LOCAL_OWNER)), folder, touched)
    for line in lines:
        number, _, digest = line.partition(" ")
        try:
            frame = int(number)
        except ValueError:
            continue
        path = frame_path(folder, frame)
        if len(digest) == 64 and path.exists() and path.stat().st_size == desc.frame_bytes:
            upload.have[frame] = digest
    for leftover in (folder / FRAMES).glob("*.part"):
        leftover.unlink(missing_ok=True)
    return upload
