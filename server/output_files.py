"""A finished job's output files as a client downloads them: names, sizes, SHA-256, chunks.

The manifest is made once, on the worker thread, when the job ends (hashing a large
ProRes file takes seconds, which the request thread must never spend); it rides in
the `done` event. A client then pulls the files a bounded chunk per request, from any
byte offset, so the front only ever reads one chunk for one request.

Names are relative to the folder that holds the output (the movie file's folder, or
the image-sequence folder's parent), so a client can lay them out the same way, and a
request can only name a file the manifest lists: never an arbitrary path.

Each file's identity (device and inode) is recorded as it is listed, in the job's
folder (IDENTITY), and `read` serves only that same file: a sequence folder replaced
by a link, or a movie replaced by a hard link to another file of the same size, is
"output_changed", not someone else's bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from bridge import media

_HASH_BLOCK = 1 << 20
IDENTITY = "output-identity.json"  # in the job's folder: {name: [st_dev, st_ino]} at write time


class OutputFileError(Exception):
    def __init__(self, code: str, message: str, hint: str = ""):
        super().__init__(message)
        self.code, self.message, self.hint = code, message, hint


def base_folder(output: str) -> Path:
    """Where manifest names start: a movie's folder, or the parent of a sequence's folder."""
    spec = media.parse_output_spec(output)
    return spec.path.parent if spec.kind != "images" else spec.path.parent.parent


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def manifest(output: str, paths: Iterable[str | Path], identity_file: Path | None = None) -> list[dict]:
    """[{name, size, sha256}] of the files a job wrote; their identities go to `identity_file`."""
    base = base_folder(output)
    files, identity = [], {}
    for path in map(Path, paths):
        st = path.stat()
        name = path.relative_to(base).as_posix()
        files.append({"name": name, "size": st.st_size, "sha256": sha256_file(path)})
        identity[name] = [st.st_dev, st.st_ino]
    if identity_file is not None:
        identity_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = identity_file.with_name(f".{identity_file.name}.partial")
        tmp.write_text(json.dumps(identity))
        os.replace(tmp, identity_file)
    return files


def load_identity(identity_file: Path) -> dict[str, list[int]] | None:
    """What `manifest` recorded, or None (a job listed before identities were recorded)."""
    try:
        data = json.loads(identity_file.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_chunk(output: str, files: list[dict], name: str, offset: int, length: int,
               identity: dict[str, list[int]] | None = None) -> tuple[bytes, int]:
    """Bytes [offset, offset + length) of the listed file `name`, and the file's size.
    `identity`: the recorded (device, inode) of each file; the file read must be that one."""
    entry = next((f for f in files if f["name"] == name), None)
    if entry is None:
        raise OutputFileError("unknown_file", f"The job has no output file {name!r}.",
                              "Ask for the job's files (request `files`) and use one of their names.")
    path = base_folder(output) / name
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise OutputFileError("output_changed", f"The output {path} cannot be read on the server ({exc.strerror}).",
                              "It was moved or deleted after the job finished; run the job again.") from None
    try:
        st = os.fstat(fd)
        size = st.st_size
        recorded = (identity or {}).get(name)
        if recorded is not None and [st.st_dev, st.st_ino] != list(recorded):
            raise OutputFileError(
                "output_changed", f"The output {path} on the server is no longer the file the job wrote "
                "(it was replaced or its folder was swapped for a link).", "Run the job again to get a fresh output.")
        if size != entry["size"]:
            raise OutputFileError(
                "output_changed", f"The output {path} changed on the server since the job finished "
                f"({size} bytes now, {entry['size']} then).", "Run the job again to get a fresh output.")
        if offset > size:
            raise OutputFileError("bad_offset", f"Offset {offset} is past the end of {name} ({size} bytes).",
                                  "Resume from at most the file's size.")
        return os.pread(fd, min(length, size - offset), offset), size
    finally:
        os.close(fd)
