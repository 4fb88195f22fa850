"""The matte the next submit edits inside (`--matte`), and its picture for the viewer's overlay.

The path goes to the server as it is (the server reads it from its own disk); the panel
reads the same file for the overlay when it can, frame by frame in source numbering.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QColor, QImage

from bridge import media
from bridge.media.matte import read_matte
from ui.model.clip import ClipModel

OVERLAY = QColor(255, 70, 60)  # where the edit goes: a red tint, as a rotoscope overlay reads
OVERLAY_OPACITY = 0.45
_CACHED = 16


class MatteModel(QObject):
    changed = Signal()

    def __init__(self, clip: ClipModel, parent: QObject | None = None):
        super().__init__(parent)
        self.clip = clip
        self.path = ""  # "" = the whole frame; "alpha" = the source's own alpha
        self.invert = False
        self.feather = 0.0
        self.overlay = True
        self.problem = ""
        self._cache: OrderedDict[tuple[str, str, int, bool], QImage | None] = OrderedDict()
        clip.clip_changed.connect(self._forget)

    def set(self, path: str, invert: bool, feather: float) -> None:
        if (path, invert, feather) != (self.path, self.invert, self.feather):
            self.path, self.invert, self.feather = path, invert, float(feather)
            self.problem = ""
            self.changed.emit()

    def show_overlay(self, on: bool) -> None:
        if on != self.overlay:
            self.overlay = on
            self.changed.emit()

    def _forget(self) -> None:
        self._cache.clear()

    def params(self) -> dict:
        """The matte's `params` for a job (none when the whole frame is edited)."""
        if not self.path:
            return {}
        return {"matte": self.path, "matte_invert": self.invert, "matte_feather": self.feather}

    def overlay_image(self, frame: int) -> QImage | None:
        """The edited region of `frame` as a translucent tint, or None (no matte, overlay off, unreadable)."""
        current = self.clip.current
        if not self.path or not self.overlay or current is None:
            return None
        key = (current.key, self.path, frame, self.invert)
        if key not in self._cache:
            self._cache[key] = self._read(str(current.path), frame)
            while len(self._cache) > _CACHED:
                self._cache.popitem(last=False)
        return self._cache[key]

    def _read(self, source: str, frame: int) -> QImage | None:
        try:
            matte = next(read_matte(self.path, source, frame, frame))
        except (media.MediaError, StopIteration, OSError) as exc:
            self.problem = f"The matte cannot be shown: {exc}"
            return None
        alpha = 255 - matte if self.invert else matte
        h, w = alpha.shape
        argb = np.empty((h, w, 4), np.uint8)  # QImage ARGB32 is B, G, R, A in memory
        argb[..., 0], argb[..., 1], argb[..., 2] = OVERLAY.blue(), OVERLAY.green(), OVERLAY.red()
        argb[..., 3] = (alpha.astype(np.float32) * OVERLAY_OPACITY).astype(np.uint8)
        image = QImage(argb.data, w, h, 4 * w, QImage.Format.Format_ARGB32)
        return image.copy()  # owns its pixels once `argb` is gone
