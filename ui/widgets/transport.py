"""Under the viewer: the thumbnail strip, the scrubber with in/out marks, the transport and timecode."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import QButtonGroup, QHBoxLayout, QLabel, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from ui.model.clip import rate_text
from ui.model.session import PanelSession
from ui.model.viewer import CompareMode
from ui.widgets import theme


class _Timeline(QWidget):
    """Maps frames to x across its width; clicking or dragging seeks."""

    def __init__(self, session: PanelSession, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    def _count(self) -> int:
        current = self.session.clip.current
        return current.info.frame_count if current else 0

    def frame_x(self, frame: float) -> float:
        n = max(1, self._count())
        return 4 + (self.width() - 8) * (frame + 0.5) / n

    def x_frame(self, x: float) -> int:
        n = max(1, self._count())
        return int((x - 4) / max(1.0, self.width() - 8) * n)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._count():
            self.session.playback.stop()
            self.session.clip.seek(self.x_frame(event.position().x()))

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._count() and event.buttons() & Qt.MouseButton.LeftButton:
            self.session.clip.seek(self.x_frame(event.position().x()))


class ThumbStrip(_Timeline):
    def __init__(self, session: PanelSession, parent: QWidget | None = None):
        super().__init__(session, parent)
        self.setFixedHeight(session.thumbs.size.height() + 4)
        session.thumbs.changed.connect(self.update)
        session.clip.position_changed.connect(self.update)

    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.fillRect(self.rect(), theme.BASE)
        thumbs = self.session.thumbs.thumbs
        if not thumbs:
            return
        width = (self.width() - 8) / len(thumbs)
        for i, (_frame, image) in enumerate(thumbs):
            cell = QRectF(4 + i * width, 2, width - 1, self.height() - 4)
            if image is None:
                painter.fillRect(cell, QColor("#222326"))
                continue
            painter.save()
            painter.setClipRect(cell)
            scaled = image.size().scaled(cell.size().toSize(), Qt.AspectRatioMode.KeepAspectRatioByExpanding)
            painter.drawImage(QRectF(cell.center().x() - scaled.width() / 2, cell.center().y() - scaled.height() / 2,
                                     scaled.width(), scaled.height()), image)
            painter.restore()
        x = self.frame_x(self.session.clip.position)
        painter.setPen(QPen(theme.ACCENT, 2))
        painter.drawLine(int(x), 0, int(x), self.height())


class Scrubber(_Timeline):
    """The clip's frames as a bar: in/out range, frames the result already has, the playhead."""

    def __init__(self, session: PanelSession, parent: QWidget | None = None):
        super().__init__(session, parent)
        self.setFixedHeight(22)
        session.clip.position_changed.connect(self.update)
        session.clip.marks_changed.connect(self.update)
        session.clip.clip_changed.connect(self.update)
        session.viewer.changed.connect(self.update)
        session.jobs.image_arrived.connect(lambda *_: self.update())

    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.fillRect(self.rect(), theme.BASE)
        clip = self.session.clip
        if clip.current is None:
            return
        h = self.height()
        painter.fillRect(QRectF(4, 6, self.width() - 8, h - 12), QColor("#2a2c30"))
        if clip.mark_in is not None or clip.mark_out is not None:
            first, last = clip.range
            x0, x1 = self.frame_x(first - 0.5), self.frame_x(last + 0.5)
            painter.fillRect(QRectF(x0, 4, x1 - x0, h - 8), QColor(232, 163, 61, 70))
            painter.setPen(QPen(theme.ACCENT, 2))
            if clip.mark_in is not None:
                painter.drawLine(int(x0), 2, int(x0), h - 2)
            if clip.mark_out is not None:
                painter.drawLine(int(x1), 2, int(x1), h - 2)
        job = self.session.viewer.job
        view = self.session.jobs.get(job) if job else None
        if view is not None:
            pictures = view.pictures_of(self.session.viewer.variant)
            for frames, colour in ((pictures.proxies, theme.RESULT.darker(170)), (pictures.full, theme.RESULT)):
                for f in frames:
                    x0, x1 = self.frame_x(f - 0.5), self.frame_x(f + 0.5)
                    painter.fillRect(QRectF(x0, h - 5, max(1.0, x1 - x0), 3), colour)
        x = self.frame_x(clip.position)
        painter.setPen(QPen(QColor("#ffffff"), 2))
        painter.drawLine(int(x), 0, int(x), h)


class TransportBar(QWidget):
    """Timecode, frame number, marks, the play controls and the compare modes."""

    def __init__(self, session: PanelSession, actions: dict, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.timecode = QLabel("--:--:--:--")
        self.timecode.setObjectName("timecode")
        self.frame_label = QLabel("")
        self.frame_label.setObjectName("dim")
        self.marks_label = QLabel("")
        self.marks_label.setObjectName("dim")
        row = QHBoxLayout(self)
        row.setContentsMargins(6, 2, 6, 2)
        row.setSpacing(4)
        row.addWidget(self.timecode)
        info = QVBoxLayout()
        info.setSpacing(0)
        info.addWidget(self.frame_label)
        info.addWidget(self.marks_label)
        row.addLayout(info)
        row.addStretch(1)
        for name in ("start", "back", "play_backward", "stop", "play", "forward", "end", None, "mark_in", "mark_out"):
            if name is None:
                row.addSpacing(10)
                continue
            button = QToolButton()
            button.setDefaultAction(actions[name])
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            row.addWidget(button)
        row.addStretch(1)
        self.modes = QButtonGroup(self)
        # The compare modes are one choice: side by side without gaps, as a segmented control
        # (which also keeps the bar narrow enough for a 1600 px screen with five of them).
        modes = QHBoxLayout()
        modes.setSpacing(0)
        for mode in ("source", "result", "wipe", "side", "variants"):
            button = QToolButton()
            button.setObjectName("mode")
            button.setDefaultAction(actions[f"mode_{mode}"])
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            modes.addWidget(button)
        row.addLayout(modes)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        session.clip.position_changed.connect(self.refresh)
        session.clip.marks_changed.connect(self.refresh)
        session.clip.clip_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        clip = self.session.clip
        if clip.current is None:
            self.timecode.setText("--:--:--:--")
            self.frame_label.setText("no clip")
            self.marks_label.setText("")
            return
        info = clip.current.info
        self.timecode.setText(clip.timecode())
        self.frame_label.setText(f"frame {clip.position} / {clip.last_frame}  ·  {rate_text(info.frame_rate)}"
                                 f"  ·  {info.width}x{info.height}")
        first, last = clip.range
        marked = clip.mark_in is not None or clip.mark_out is not None
        self.marks_label.setText(f"{'in' if marked else 'whole clip'} {first} → {last}  ({last - first + 1} frames)")


def compare_modes() -> list[CompareMode]:
    return list(CompareMode)
