"""A finished job's output files as a client downloads them: names, sizes, SHA-256, chunks.

The manifest is made once, on the worker thread, when the job ends (hashing a large
ProRes file takes seconds, which the request thread must never spend); it rides in
the `done` event. A client then pulls the files a bounded chunk per request, from any
byte offset, so the front only ever reads one chunk for one request.

Names are relative to the folder that holds the output (the movie file's folder, or
the image-sequence folder's parent), so a client can lay them out the same way, and a
request can only name a file the manifest lists: never an arbitrary path.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from bridge import media

_HASH_BLOCK = 1 << 20


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


def manifest(output: str, paths: Iterable[str | Path]) -> list[dict]:
    """[{name, size, sha256}] of the files a job wrote."""
    base = base_folder(output)
    files = []
    for path in map(Path, paths):
        files.append({"name": path.relative_to(base).as_posix(), "size": path.stat().st_size,
                      "sha256": sha256_file(path)})
    return files


def read_chunk(output: str, files: list[dict], name: str, offset: int, length: int) -> tuple[bytes, int]:
    """Bytes [offset, offset + length) of the listed file `name`, and the file's size."""
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
        size = os.fstat(fd).st_size
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
