"""Source frames for the viewer: decoded with PyAV through bridge.media, cached at display size.

Scrubbing asks for frames out of order and playback asks for them in order, so the
decoder keeps its generator open: the next frame in order costs one decode, a jump
costs one seek. Decoded frames are kept scaled to display size in a bounded cache.
Thumbnails for the strip under the viewer decode in their own thread.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Generator
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QSize, Qt, QThread, Signal
from PySide6.QtGui import QImage

from bridge import media
from ui.images import DISPLAY_MAX, rgb_to_qimage
from ui.model.clip import ClipModel

CACHE_BYTES = 256 * 1024 * 1024
THUMB_HEIGHT = 54


class SourceFrames(QObject):
    """The current clip's frames as display-size QImages."""

    error = Signal(str)

    def __init__(self, clip: ClipModel, max_bytes: int = CACHE_BYTES, parent: QObject | None = None):
        super().__init__(parent)
        self.clip = clip
        self.max_bytes = max_bytes
        self._cache: OrderedDict[tuple[str, int], QImage] = OrderedDict()
        self._bytes = 0
        self._reader: Generator[np.ndarray, None, None] | None = None  # media.read_frames, held open for the next frame
        self._reader_path: Path | None = None
        self._next = -1
        clip.clip_changed.connect(self._close_reader)

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader, self._reader_path, self._next = None, None, -1

    def image(self, frame: int) -> QImage | None:
        current = self.clip.current
        if current is None:
            return None
        key = (current.key, frame)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        try:
            pixels = self._decode(current.path, frame, current.last_frame)
        except media.MediaError as exc:
            self._close_reader()
            self.error.emit(str(exc))
            return None
        image = rgb_to_qimage(pixels, DISPLAY_MAX)
        self._cache[key] = image
        self._bytes += image.sizeInBytes()
        while self._bytes > self.max_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._bytes -= old.sizeInBytes()
        return image

    def _decode(self, path: Path, frame: int, last: int):
        reader = self._reader
        if reader is None or self._reader_path != path or frame != self._next:
            self._close_reader()
            reader = self._reader = media.read_frames(path, frame, last)
            self._reader_path = path
            self._next = frame
        pixels = next(reader)
        self._next = frame + 1
        if self._next > last:
            self._close_reader()
        return pixels


class _ThumbThread(QThread):
    thumb = Signal(str, int, object)  # clip key, frame, QImage

    def __init__(self, key: str, path: Path, frames: list[int]):
        super().__init__()
        self.key, self.path, self.frames = key, path, frames
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True
        self.wait()

    def run(self) -> None:
        for frame in self.frames:
            if self._stopping:
                return
            try:
                pixels = next(media.read_frames(self.path, frame, frame))
            except (media.MediaError, StopIteration):
                return
            image = rgb_to_qimage(pixels, None).scaledToHeight(THUMB_HEIGHT, Qt.TransformationMode.SmoothTransformation)
            self.thumb.emit(self.key, frame, image)


class ThumbnailsModel(QObject):
    """Evenly spaced thumbnails of the current clip, filled in as they decode."""

    changed = Signal()

    def __init__(self, clip: ClipModel, count: int = 12, parent: QObject | None = None):
        super().__init__(parent)
        self.clip = clip
        self.count = count
        self.thumbs: list[tuple[int, QImage | None]] = []
        self._thread: _ThumbThread | None = None
        clip.clip_changed.connect(self._reload)

    @property
    def size(self) -> QSize:
        return QSize(THUMB_HEIGHT * 16 // 9, THUMB_HEIGHT)

    def _reload(self) -> None:
        self.stop()
        current = self.clip.current
        self.thumbs = []
        if current is not None:
            n = min(self.count, current.info.frame_count)
            step = current.info.frame_count / n
            frames = sorted({min(current.last_frame, int(i * step + step / 2)) for i in range(n)})
            self.thumbs = [(f, None) for f in frames]
            self._thread = _ThumbThread(current.key, current.path, frames)
            self._thread.thumb.connect(self._arrived)
            self._thread.start()
        self.changed.emit()

    def _arrived(self, key: str, frame: int, image: QImage) -> None:
        if self.clip.current is None or key != self.clip.current.key:
            return
        self.thumbs = [(f, image if f == frame else im) for f, im in self.thumbs]
        self.changed.emit()

    @property
    def ready(self) -> bool:
        return bool(self.thumbs) and all(im is not None for _, im in self.thumbs)

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
            self._thread = None
