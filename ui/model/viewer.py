"""What the viewer compares: the source, a version of it, or both (wipe, side by side)."""

from __future__ import annotations

import enum

from PySide6.QtCore import QObject, QRectF, Signal


class CompareMode(str, enum.Enum):
    SOURCE = "source"
    RESULT = "result"
    WIPE = "wipe"  # source left of a draggable divider, result right of it
    SIDE = "side"  # source left, result right


# One order for every comparison, as editors read a before/after: the source on the left,
# the result on the right, of the wipe's divider and of the pair alike.

def wipe_parts(picture: QRectF, wipe: float) -> tuple[QRectF, QRectF]:
    """(source part, result part) of a wiped picture, split at `wipe` (0..1 of its width)."""
    split = picture.width() * max(0.0, min(1.0, wipe))
    return (QRectF(picture.x(), picture.y(), split, picture.height()),
            QRectF(picture.x() + split, picture.y(), picture.width() - split, picture.height()))


def side_by_side(box: QRectF, gap: float) -> tuple[QRectF, QRectF]:
    """(source box, result box) for two pictures next to each other in `box`."""
    half = (box.width() - gap) / 2
    return (QRectF(box.x(), box.y(), half, box.height()),
            QRectF(box.x() + half + gap, box.y(), half, box.height()))


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
