"""Recording a job's events: store first, then tell the front.

Whoever produces an event (the worker thread, or the front itself for a queued job's
cancel) goes through `Journal.append`: an image the event carries is written to the
job's folder (atomically: temporary file, then rename), the event goes into the store,
and only then is the front woken to send it. So an event a client sees can always be
replayed, and a crash between the steps loses at most an unreferenced file.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bridge.wire import protocol as p
from server.paths import DataDir
from server.store import EventRecord, JobStore

FRAMES_DIR = "frames/"  # full-resolution frames, served back as pixel arrays


@dataclass(frozen=True)
class Blob:
    """An event's binary payload: encoded image bytes, or a pixel array."""

    name: str  # file name inside the job folder, e.g. "frames/00000012.npy"
    data: bytes | np.ndarray


class BlobCache:
    """Recently recorded payloads, so live subscribers need not read them back from disk.

    Bounded by bytes; anything evicted is still on disk.
    """

    def __init__(self, max_bytes: int = 256 << 20):
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, str], bytes | np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, job_id: str, name: str, data: bytes | np.ndarray) -> None:
        size = _nbytes(data)
        if size > self.max_bytes:
            return
        with self._lock:
            key = (job_id, name)
            if key in self._items:
                self._bytes -= _nbytes(self._items.pop(key))
            self._items[key] = data
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._bytes -= _nbytes(old)

    def get(self, job_id: str, name: str) -> bytes | np.ndarray | None:
        with self._lock:
            return self._items.get((job_id, name))


def _nbytes(data: bytes | np.ndarray) -> int:
    return data.nbytes if isinstance(data, np.ndarray) else len(data)


class Doorbell:
    """Wakes the front's poll loop from any thread: a byte down a pipe it polls."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)

    def fileno(self) -> int:
        return self._r

    def ring(self) -> None:
        try:
            os.write(self._w, b"\x01")
        except BlockingIOError:
            pass  # the pipe is full of rings already: the front will wake anyway

    def drain(self) -> None:
        try:
            while os.read(self._r, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        os.close(self._r)
        os.close(self._w)


class Journal:
    def __init__(self, store: JobStore, data: DataDir, cache: BlobCache, doorbell: Doorbell):
        self.store = store
        self.data = data
        self.cache = cache
        self.doorbell = doorbell

    def append(self, job_id: str, event: p.Body, *, blob: Blob | None = None,
               frame: int | None = None, **job_updates: Any) -> EventRecord:
        """`event`: the protocol's body of one job event (p.Progress, p.Proxy, ...)."""
        if blob is not None:
            self._write_blob(job_id, blob)
        record = self.store.append_event(
            job_id, event, blob=blob.name if blob else None, frame=frame, **job_updates
        )
        if blob is not None:
            self.cache.put(job_id, blob.name, blob.data)
        self.doorbell.ring()
        return record

    def blob_path(self, job_id: str, name: str) -> Path:
        return self.data.job(job_id) / name

    def read_blob(self, job_id: str, name: str) -> bytes | np.ndarray:
        cached = self.cache.get(job_id, name)
        if cached is not None:
            return cached
        path = self.blob_path(job_id, name)
        if not path.exists():  # the job was deleted while a client was being sent its events
            from server.disk import trash_folder

            path = trash_folder(self.data) / job_id / name
        if name.endswith(".npy"):  # frames stored by servers before frames became PNG
            return np.load(path, allow_pickle=False)
        if name.startswith(FRAMES_DIR) and name.endswith(".png"):
            with Image.open(path) as picture:
                return np.asarray(picture.convert("RGBA" if picture.mode == "RGBA" else "RGB"))
        return path.read_bytes()

    def _write_blob(self, job_id: str, blob: Blob) -> None:
        path = self.blob_path(job_id, blob.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.partial")
        try:
            with open(tmp, "wb") as f:
                if isinstance(blob.data, np.ndarray) and blob.name.endswith(".png"):
                    # Lossless and about half the raw size on real footage (a third of .npy's
                    # 6 MB per 1080p frame); level 1 keeps the encode a few tens of ms.
                    # RGB, or RGBA where the source had alpha (an RGBA upload's frames).
                    channels = 4 if blob.data.ndim == 3 and blob.data.shape[2] == 4 else 3
                    Image.fromarray(np.ascontiguousarray(blob.data[..., :channels])).save(
                        f, format="PNG", compress_level=1)
                elif isinstance(blob.data, np.ndarray):
                    np.save(f, np.ascontiguousarray(blob.data), allow_pickle=False)
                else:
                    f.write(blob.data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk must not keep the half-written file
            raise
