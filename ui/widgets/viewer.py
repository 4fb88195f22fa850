"""The viewer: the source, the result, or both (a wipe with a draggable divider, or side by side),
or the source beside every prompt's result of a several-prompt job (Variants: tiles, each
labelled with its prompt; clicking one makes it the result the other modes show).

Both sides are drawn for the same playhead frame, so playback is synchronised by
construction. The result side shows the best picture there is for that frame: the
full-resolution frame, else its proxy, else the nearest keyframe preview (labelled).
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent, QFont, QImage, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from bridge.wire.lifecycle import JobState
from ui.model.session import PanelSession
from ui.model.viewer import CompareMode, side_by_side, tiles, wipe_parts
from ui.widgets import theme

_LABELS = {"frame": "RESULT", "proxy": "RESULT · proxy", "preview": "RESULT · keyframe preview"}


def _fit(image_size: QSize, box: QRectF) -> QRectF:
    if image_size.isEmpty():
        return QRectF()
    scale = min(box.width() / image_size.width(), box.height() / image_size.height())
    w, h = image_size.width() * scale, image_size.height() * scale
    return QRectF(box.x() + (box.width() - w) / 2, box.y() + (box.height() - h) / 2, w, h)


class Viewer(QWidget):
    files_dropped = Signal(list)

    def __init__(self, session: PanelSession, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(320, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._dragging = False
        self.shown_kind = ""  # what the result side shows now: "frame" | "proxy" | "preview" | ""
        # Variants mode: (tile, variant) as last drawn (variant -1: the source), for clicks and tests,
        # and what each variant's tile showed ("frame" | "proxy" | "preview" | "").
        self.tile_rects: list[tuple[QRectF, int]] = []
        self.tile_kinds: dict[int, str] = {}
        s = session
        s.clip.position_changed.connect(self.update)
        s.clip.clip_changed.connect(self.update)
        s.viewer.changed.connect(self.update)
        s.matte.changed.connect(self.update)
        s.jobs.image_arrived.connect(self._image_arrived)
        s.jobs.job_changed.connect(self._job_changed)

    def _image_arrived(self, job: str, kind: str, frame: int, variant: int) -> None:
        if job == self.session.viewer.job:
            self.update()

    def _job_changed(self, job: str) -> None:
        if job == self.session.viewer.job:
            self.update()

    # --- what to draw ---

    def source_image(self) -> QImage | None:
        if self.session.clip.current is None:
            return None
        return self.session.frames.image(self.session.clip.position)

    def result_image(self) -> tuple[QImage | None, str]:
        job = self.session.viewer.job
        view = self.session.jobs.get(job) if job else None
        if view is None:
            return None, ""
        return view.best_image(self.session.clip.position, self.session.viewer.variant)

    def _picture_box(self) -> QRectF:
        return QRectF(self.rect()).adjusted(8, 8, -8, -8)

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#0d0d0e"))
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        if self.session.clip.current is None:
            self._empty(painter)
            return
        mode = self.session.viewer.mode
        source = self.source_image()
        result, kind = (None, "")
        if mode is not CompareMode.SOURCE:
            result, kind = self.result_image()
        self.shown_kind = kind
        box = self._picture_box()
        if mode is CompareMode.VARIANTS:
            self._variants(painter, source, box)
        elif mode is CompareMode.SIDE:
            source_box, result_box = side_by_side(box, gap=8)
            self._picture(painter, source, source_box, "SOURCE")
            self._picture(painter, result, result_box, self._result_label(kind), result=True, shape=source)
        elif mode is CompareMode.WIPE and source is not None:
            rect = _fit(source.size(), box)
            painter.drawImage(rect, source)
            _, result_part = wipe_parts(rect, self.session.viewer.wipe)
            if result is not None:
                painter.save()
                painter.setClipRect(result_part)
                painter.drawImage(rect, result)
                painter.restore()
            split = result_part.x()
            painter.setPen(QPen(theme.ACCENT, 2))
            painter.drawLine(QPointF(split, rect.top()), QPointF(split, rect.bottom()))
            painter.setBrush(theme.ACCENT)
            painter.drawEllipse(QPointF(split, rect.center().y()), 6, 6)
            self._label(painter, rect.topLeft(), "SOURCE", theme.TEXT)
            result_label = self._result_label(kind) if result else "RESULT · waiting"
            self._label(painter, QPointF(rect.right() - self._label_width(painter, result_label), rect.top()),
                        result_label, theme.RESULT)
        elif mode is CompareMode.RESULT:
            self._picture(painter, result, box, self._result_label(kind), result=True, shape=source)
        else:
            self._picture(painter, source, box, "SOURCE")

    def _result_label(self, kind: str) -> str:
        """RESULT and what it is; with several prompts, which one ("RESULT 2/3 · proxy")."""
        label = _LABELS.get(kind, "RESULT")
        job = self.session.viewer.job
        view = self.session.jobs.get(job) if job else None
        if view is not None and view.variants:
            label = label.replace("RESULT", f"RESULT {self.session.viewer.variant + 1}/{len(view.prompts)}", 1)
        return label

    def _variants(self, painter: QPainter, source: QImage | None, box: QRectF) -> None:
        """The source and each prompt's result at the playhead, tiled at the source's aspect."""
        job = self.session.viewer.job
        view = self.session.jobs.get(job) if job else None
        prompts = view.prompts if view is not None else []
        aspect = source.width() / source.height() if source is not None and source.height() else 16 / 9
        rects = tiles(box, 1 + max(1, len(prompts)), aspect, gap=8)
        self.tile_rects = [(rect, variant - 1) for variant, rect in enumerate(rects)]
        self.tile_kinds = {}
        self._picture(painter, source, rects[0], "SOURCE")
        chosen = self.session.viewer.variant
        for variant, rect in enumerate(rects[1:]):
            image, kind = view.best_image(self.session.clip.position, variant) if view is not None else (None, "")
            self.tile_kinds[variant] = kind
            prompt = prompts[variant] if variant < len(prompts) else ""
            suffix = {"proxy": " · proxy", "preview": " · preview"}.get(kind, "")
            painter.setFont(self._label_font())
            label = painter.fontMetrics().elidedText(f"{variant + 1} · {prompt}", Qt.TextElideMode.ElideRight,
                                                     max(40, int(rect.width()) - 90)) + suffix
            self._picture(painter, image, rect, label, result=True, shape=source)
            if variant == chosen and len(prompts) > 1:
                # The variant the single-result modes show.
                painter.setPen(QPen(theme.ACCENT, 2))
                painter.setBrush(Qt.BrushStyle.NoBrush)
                painter.drawRect(_fit(source.size(), rect) if source is not None else rect)

    def variant_at(self, point: QPointF) -> int | None:
        """The variant whose tile is under `point` in Variants mode (None: the source or no tile)."""
        for rect, variant in self.tile_rects:
            if variant >= 0 and rect.contains(point):
                return variant
        return None

    def _picture(self, painter: QPainter, image: QImage | None, box: QRectF, label: str, result: bool = False,
                 shape: QImage | None = None) -> None:
        """Draw `image` in `box`; with `shape`, at that picture's aspect ratio.

        Previews and proxies come small, so a result is drawn at the source's aspect ratio
        to look like the frames it becomes. The source carries the matte's overlay, if any.
        """
        if image is None:
            painter.setPen(theme.DIM)
            job = self.session.viewer.job
            view = self.session.jobs.get(job) if job else None
            if not result:
                text = ""
            elif job is None:
                text = "No version yet: write a prompt and submit (Ctrl+Enter)"
            elif view is not None and view.terminal:
                text = view.status_text if view.state != JobState.DONE else "Fetching the frames ..."
            else:
                text = "Waiting for the first preview ..."
            # Wrapped inside the box: a failed job's message and its advice are whole sentences.
            painter.drawText(box.adjusted(16, 16, -16, -16),
                             int(Qt.AlignmentFlag.AlignCenter) | int(Qt.TextFlag.TextWordWrap), text)
            return
        rect = _fit((shape if shape is not None else image).size(), box)
        painter.drawImage(rect, image)
        overlay = None if result else self.session.matte.overlay_image(self.session.clip.position)
        if overlay is not None:
            painter.drawImage(rect, overlay)
        self._label(painter, rect.topLeft(), label, theme.RESULT if result else theme.TEXT)

    def _label_font(self) -> QFont:
        font = QFont(self.font())
        font.setPointSizeF(8)
        font.setBold(True)
        return font

    def _label_width(self, painter: QPainter, text: str) -> float:
        painter.setFont(self._label_font())
        return painter.fontMetrics().horizontalAdvance(text) + 10

    def _label(self, painter: QPainter, at: QPointF, text: str, colour: QColor) -> None:
        width = self._label_width(painter, text)
        painter.fillRect(QRectF(at.x(), at.y(), width, 16), QColor(0, 0, 0, 160))
        painter.setPen(colour)
        painter.drawText(QRectF(at.x() + 5, at.y(), width, 16), Qt.AlignmentFlag.AlignVCenter, text)

    def _empty(self, painter: QPainter) -> None:
        box = QRectF(self.rect()).adjusted(40, 40, -40, -40)
        painter.setPen(QPen(QColor("#3a3d42"), 2, Qt.PenStyle.DashLine))
        painter.drawRoundedRect(box, 8, 8)
        painter.setPen(theme.DIM)
        font = QFont(self.font())
        font.setPointSizeF(12)
        painter.setFont(font)
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter,
                         "Drop a clip here\nor press Ctrl+O to open one\n\n"
                         "I / O mark in and out · J K L and Space play · Ctrl+Enter submits")

    # --- the wipe divider ---

    def _wipe_rect(self) -> QRectF | None:
        source = self.source_image()
        if source is None or self.session.viewer.mode is not CompareMode.WIPE:
            return None
        return _fit(source.size(), self._picture_box())

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self.session.viewer.mode is CompareMode.VARIANTS and event.button() == Qt.MouseButton.LeftButton:
            variant = self.variant_at(event.position())
            if variant is not None:  # this prompt becomes the result the other modes show
                self.session.viewer.set_variant(variant)
        rect = self._wipe_rect()
        if rect is not None and event.button() == Qt.MouseButton.LeftButton:
            self._dragging = True
            self.session.viewer.set_wipe((event.position().x() - rect.x()) / max(1.0, rect.width()))
        self.setFocus()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        rect = self._wipe_rect()
        if self._dragging and rect is not None:
            self.session.viewer.set_wipe((event.position().x() - rect.x()) / max(1.0, rect.width()))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._dragging = False

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self.session.viewer.mode is CompareMode.VARIANTS and self.variant_at(event.position()) is not None:
            self.session.viewer.set_variant(self.variant_at(event.position()) or 0)
            self.session.viewer.set_mode(CompareMode.RESULT)  # a double-click: that one, whole

    # --- drag and drop a clip ---

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.files_dropped.emit(paths)
