"""Saving a finished job's outputs on this machine, wherever the server runs.

The client pulls each file a chunk at a time (`read` requests) into a hidden partial
file beside the target, so a dropped connection (or a killed client) resumes from the
bytes already on disk instead of starting again. When the last chunk is in, the
SHA-256 of the whole file is checked against the server's, and only then does the
file get its final name, without ever replacing a file that is there: a file with the
same content counts as already downloaded; a different one makes the new file take
the next free name (`name_2.mov`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bridge.wire import protocol as p
from bridge.wire.client import Client, ClientError, ConnectionLost
from bridge.wire.naming import unique_path

_HASH_BLOCK = 1 << 20


class DownloadError(ClientError):
    """A download that cannot finish; the message says why and what to do."""


@dataclass(frozen=True)
class Saved:
    name: str  # the server's name for the file
    path: Path  # where it is on this machine
    size: int
    sha256: str
    already_there: bool = False  # an identical file was already at the target


def partial_path(target: Path, sha256: str) -> Path:
    """The hidden file a download grows in; the checksum in its name means a partial of a
    different version of the output is never resumed by mistake."""
    return target.with_name(f".{target.name}.{sha256[:16]}.partial")


def _sha256(path: Path, digest=None):
    digest = digest or hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
    return digest


def _local_target(folder: Path, name: str) -> Path:
    rel = PurePosixPath(name)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise DownloadError(f"The server named an output {name!r} outside the download folder; refusing it.")
    return folder.joinpath(*rel.parts)


def _place(partial: Path, target: Path, sha256: str) -> tuple[Path, bool]:
    """Give the finished partial its final name without replacing any file; (path, already_there)."""
    def same(path: Path) -> bool:
        return path.is_file() and _sha256(path).hexdigest() == sha256

    if same(target):
        partial.unlink()
        return target, True
    while True:
        final = unique_path(target)
        try:
            os.link(partial, final)  # fails if `final` appeared meanwhile: never replaces a file
        except FileExistsError:
            continue
        except OSError:  # a file system without hard links: check, then rename
            if final.exists():
                continue
            os.rename(partial, final)
            return final, False
        partial.unlink()
        return final, False


def download_file(client: Client, job: str, info: p.FileInfo, folder: Path, *,
                  chunk_size: int = p.MAX_CHUNK_BYTES, on_chunk: Callable[[str, int, int], None] | None = None,
                  max_reconnects: int = 5, window: int = 4) -> Saved:
    target = _local_target(folder, info.name)
    if target.is_file() and target.stat().st_size == info.size and _sha256(target).hexdigest() == info.sha256:
        return Saved(info.name, target, info.size, info.sha256, already_there=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(target, info.sha256)
    if partial.exists() and partial.stat().st_size > info.size:
        partial.unlink()  # longer than the file can be: not ours to resume
    digest = _sha256(partial) if partial.exists() else hashlib.sha256()
    offset = partial.stat().st_size if partial.exists() else 0
    reconnects = 0
    with open(partial, "ab") as out:
        while offset < info.size:
            try:
                for chunk, data in client.read_stream(job, info.name, offset, info.size,
                                                      min(chunk_size, p.MAX_CHUNK_BYTES), window):
                    if chunk.offset != offset or not data:
                        raise DownloadError(f"The server sent bytes of {info.name} at {chunk.offset}, not {offset}.")
                    out.write(data)
                    out.flush()  # what is on disk is what a resumed download counts on
                    digest.update(data)
                    offset += len(data)
                    if on_chunk is not None:
                        on_chunk(info.name, offset, info.size)
            except ConnectionLost:
                if reconnects >= max_reconnects:
                    raise DownloadError(
                        f"The connection to the server dropped {reconnects + 1} times while downloading {info.name}; "
                        f"{offset} of {info.size} bytes are kept in {partial}. Run the download again to resume."
                    ) from None
                reconnects += 1
                client.reconnect()
    if digest.hexdigest() != info.sha256:
        partial.unlink()
        raise DownloadError(f"{info.name} arrived damaged (its SHA-256 does not match the server's); the partial "
                            "file was removed. Download it again.")
    final, already = _place(partial, target, info.sha256)
    return Saved(info.name, final, info.size, info.sha256, already_there=already)


def download_job(client: Client, job: str, folder: str | os.PathLike, **kw) -> list[Saved]:
    """Every output file of a done job into `folder` (created if needed), checksums verified."""
    listing = client.files(job)
    if listing.state != p.JobState.DONE:
        raise DownloadError(f"Job {job} is {listing.state}: only a done job's outputs can be downloaded.")
    folder = Path(folder).expanduser().absolute()
    return [download_file(client, job, info, folder, **kw) for info in listing.files]
