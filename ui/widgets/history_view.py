"""Every version made for the current clip: thumbnail, prompt, parameters, state; each prompt of a
several-prompt job as its own entry ("variant 2 of 3"), so Show, Make again and Export act on it."""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from bridge.wire.lifecycle import JobState
from ui.images import image_from_png
from ui.model.history import entry_key
from ui.model.session import PanelSession


class HistoryView(QWidget):
    export_requested = Signal(str)

    def __init__(self, session: PanelSession, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.list = QListWidget()
        self.list.setIconSize(QSize(96, 60))
        self.list.setSpacing(2)
        self.list.setWordWrap(True)
        self.list.itemDoubleClicked.connect(lambda item: session.reload(item.data(Qt.ItemDataRole.UserRole)))
        self.list.itemSelectionChanged.connect(self._enable)
        buttons = QHBoxLayout()
        self.reload = QPushButton("Show")
        self.reload.setToolTip("Load this version: its frames in the viewer, its parameters in the form")
        self.reload.clicked.connect(lambda: self._on_selected(session.reload))
        self.again = QPushButton("Make again")
        self.again.setToolTip("Submit the same edit again")
        self.again.clicked.connect(lambda: self._on_selected(session.make_again))
        self.export = QPushButton("Export…")
        self.export.clicked.connect(lambda: self._on_selected(self.export_requested.emit))
        for b in (self.reload, self.again, self.export):
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.list)
        layout.addLayout(buttons)
        session.history.changed.connect(self._history_changed)
        session.clip.clip_changed.connect(self.rebuild)
        session.viewer.changed.connect(self._mark_shown)
        self.rebuild()

    def selected(self) -> str | None:
        items = self.list.selectedItems()
        return items[0].data(Qt.ItemDataRole.UserRole) if items else None

    def _on_selected(self, act: Callable[[str], object]) -> None:
        """`act` on the selected version's job, if one is selected."""
        job = self.selected()
        if job:
            act(job)

    def jobs(self) -> list[str]:
        """The entries' keys, top to bottom (a one-prompt job's is its job id)."""
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]

    def _history_changed(self, clip: str) -> None:
        current = self.session.clip.current
        if current is not None and current.key == clip:
            self.rebuild()

    def rebuild(self) -> None:
        keep = self.selected()
        self.list.clear()
        current = self.session.clip.current
        if current is None:
            self._enable()
            return
        for v in self.session.history.versions(current.key):
            when = time.strftime("%d %b %H:%M", time.localtime(v.created))
            item = QListWidgetItem(f"{v.prompt}\n{v.summary}\n{v.state} · {when}")
            item.setData(Qt.ItemDataRole.UserRole, v.key)
            image = image_from_png(v.thumbnail)
            if not image.isNull():
                item.setIcon(QIcon(QPixmap.fromImage(image)))
            item.setToolTip(f"job {v.job_id}\n" + "\n".join(f"{k}: {val}" for k, val in v.params.items())
                            + (f"\noutput: {v.outputs[0]}" if v.outputs else "") + (f"\n{v.message}" if v.message else ""))
            self.list.addItem(item)
            if v.key == keep:
                item.setSelected(True)
        self._mark_shown()
        self._enable()

    def _mark_shown(self) -> None:
        viewer = self.session.viewer
        shown = entry_key(viewer.job, viewer.variant) if viewer.job else None
        for i in range(self.list.count()):
            item = self.list.item(i)
            font = item.font()
            font.setBold(item.data(Qt.ItemDataRole.UserRole) == shown)
            item.setFont(font)

    def _enable(self) -> None:
        job = self.selected()
        version = self.session.history.get(job) if job else None
        self.reload.setEnabled(version is not None)
        self.again.setEnabled(version is not None)
        self.export.setEnabled(version is not None and version.state == JobState.DONE)
