"""What the viewer compares: the source, a version of it, or both (wipe, side by side)."""

from __future__ import annotations

import enum

from PySide6.QtCore import QObject, Signal


class CompareMode(str, enum.Enum):
    SOURCE = "source"
    RESULT = "result"
    WIPE = "wipe"  # result left of a draggable divider, source right of it
    SIDE = "side"  # source and result side by side


class ViewerModel(QObject):
    changed = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.mode = CompareMode.SOURCE
        self.wipe = 0.5  # divider position, 0..1 of the picture's width
        self.job: str | None = None  # the version shown as the result

    def set_mode(self, mode: CompareMode | str) -> None:
        mode = CompareMode(mode)
        if mode is not self.mode:
            self.mode = mode
            self.changed.emit()

    def set_wipe(self, fraction: float) -> None:
        fraction = max(0.0, min(1.0, float(fraction)))
        if fraction != self.wipe:
            self.wipe = fraction
            self.changed.emit()

    def show_job(self, job: str | None) -> None:
        if job != self.job:
            self.job = job
            if job is not None and self.mode is CompareMode.SOURCE:
                self.mode = CompareMode.RESULT
            if job is None:
                self.mode = CompareMode.SOURCE
            self.changed.emit()
