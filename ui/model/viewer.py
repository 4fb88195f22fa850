"""What the viewer compares: the source, a version of it, or both (wipe, side by side), or the
source beside every variant of a several-prompt job (tiles)."""

from __future__ import annotations

import enum
import math

from PySide6.QtCore import QObject, QRectF, Signal


class CompareMode(str, enum.Enum):
    SOURCE = "source"
    RESULT = "result"
    WIPE = "wipe"  # source left of a draggable divider, result right of it
    SIDE = "side"  # source left, result right
    VARIANTS = "variants"  # the source and every prompt's result, tiled


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


def tiles(box: QRectF, count: int, aspect: float, gap: float) -> list[QRectF]:
    """`count` boxes in rows of a grid over `box`, left to right then down, with the column count
    that gives each picture of width/height `aspect` the largest size (the pictures keep their
    aspect inside their boxes, so a grid that fits the box's shape wastes least)."""
    if count <= 0 or box.width() <= 0 or box.height() <= 0:
        return []
    aspect = aspect if aspect > 0 else 16 / 9

    def picture_width(columns: int) -> float:
        rows = math.ceil(count / columns)
        w = (box.width() - gap * (columns - 1)) / columns
        h = (box.height() - gap * (rows - 1)) / rows
        return min(w, h * aspect)

    columns = max(range(1, count + 1), key=lambda c: (picture_width(c), -c))
    rows = math.ceil(count / columns)
    # Each box just holds its picture, and the grid is centred: the tiles sit together.
    w = picture_width(columns)
    h = w / aspect
    x0 = box.x() + (box.width() - (columns * w + gap * (columns - 1))) / 2
    y0 = box.y() + (box.height() - (rows * h + gap * (rows - 1))) / 2
    return [QRectF(x0 + (i % columns) * (w + gap), y0 + (i // columns) * (h + gap), w, h) for i in range(count)]


class ViewerModel(QObject):
    changed = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.mode = CompareMode.SOURCE
        self.wipe = 0.5  # divider position, 0..1 of the picture's width
        self.job: str | None = None  # the version shown as the result
        # Which prompt of the job the single-result modes show (0: params.prompt, v: variants[v-1]).
        self.variant = 0

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

    def set_variant(self, variant: int) -> None:
        variant = max(0, int(variant))
        if variant != self.variant:
            self.variant = variant
            self.changed.emit()

    def show_job(self, job: str | None, variant: int = 0) -> None:
        if job != self.job or variant != self.variant:
            self.job = job
            self.variant = max(0, variant)
            if job is not None and self.mode is CompareMode.SOURCE:
                self.mode = CompareMode.RESULT
            if job is None:
                self.mode = CompareMode.SOURCE
            self.changed.emit()
