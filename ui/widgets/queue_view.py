"""The render queue: every job on the server with its state and progress; move, cancel,
retry, remove, export."""

from __future__ import annotations

import os

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QHeaderView, QPushButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from bridge.wire.lifecycle import RETRYABLE_STATES, JobState
from ui.model.session import PanelSession
from ui.widgets import theme

_COLUMNS = ("State", "Prompt", "Frames", "Clip", "Job")


class QueueView(QWidget):
    export_requested = Signal(str)

    def __init__(self, session: PanelSession, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(list(_COLUMNS))
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        # Short columns take what their text needs, the prompt the rest: a clip name is read
        # whole, a long prompt is the one thing worth eliding (its tooltip has all of it).
        header = self.tree.header()
        header.setStretchLastSection(False)
        for column in range(len(_COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(_COLUMNS.index("Prompt"), QHeaderView.ResizeMode.Stretch)
        # At least four jobs visible; the main window opens the dock at eight (preferred_height).
        self.tree.setMinimumHeight(self.rows_height(4))
        self.tree.itemSelectionChanged.connect(self._enable)
        self.tree.itemDoubleClicked.connect(lambda item, col: self.session.reload(item.data(0, Qt.ItemDataRole.UserRole)))
        buttons = QHBoxLayout()
        self.up = self._button("Move up", "Run this queued job earlier (Ctrl+Up)", lambda j: session.move(j, -1))
        self.down = self._button("Move down", "Run this queued job later (Ctrl+Down)", lambda j: session.move(j, +1))
        self.cancel = self._button("Cancel", "Cancel this job", session.cancel)
        self.retry = self._button("Retry", "Queue this failed or cancelled job again (same output name)",
                                  session.retry)
        self.remove = self._button("Remove", "Take this finished job off the list (the history keeps it)",
                                   session.remove)
        self.export = self._button("Export…", "Write this version with an export preset", self.export_requested.emit)
        for b in (self.up, self.down, self.cancel, self.retry, self.remove, self.export):
            buttons.addWidget(b)
        buttons.addStretch(1)
        self.pause = QPushButton("Pause queue")
        self.pause.setCheckable(True)
        self.pause.setToolTip("Pause: the running job finishes, nothing new starts (kept across server restarts)")
        self.pause.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.pause.clicked.connect(lambda checked: session.pause_queue(checked))
        buttons.addWidget(self.pause)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(buttons)
        layout.addWidget(self.tree)
        session.jobs.changed.connect(self.rebuild)
        session.jobs.job_changed.connect(self._update_one)
        session.jobs.queue_changed.connect(self._queue_state)
        self._queue_state()
        self.rebuild()

    def rows_height(self, rows: int) -> int:
        """The tree's height for `rows` jobs and its header."""
        return self.tree.fontMetrics().height() * rows + 40

    def preferred_height(self) -> int:
        """The dock's opening height: the buttons and eight jobs before it scrolls."""
        return self.minimumSizeHint().height() - self.rows_height(4) + self.rows_height(8)
    def _queue_state(self) -> None:
        paused = self.session.jobs.paused
        self.pause.setVisible(paused is not None)
        self.pause.setChecked(bool(paused))
        self.pause.setText("Resume queue (paused)" if paused else "Pause queue")

    def _button(self, text: str, tip: str, action) -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tip)
        button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        button.clicked.connect(lambda: self.selected() and action(self.selected()))
        return button

    def selected(self) -> str | None:
        items = self.tree.selectedItems()
        return items[0].data(0, Qt.ItemDataRole.UserRole) if items else None

    def select(self, job: str) -> None:
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item is not None and item.data(0, Qt.ItemDataRole.UserRole) == job:
                self.tree.setCurrentItem(item)
                return

    def rebuild(self) -> None:
        keep = self.selected()
        self.tree.clear()
        for view in self.session.jobs.ordered():
            item = QTreeWidgetItem()
            item.setData(0, Qt.ItemDataRole.UserRole, view.id)
            self._fill(item, view)
            self.tree.addTopLevelItem(item)
        if keep:
            self.select(keep)
        self._enable()

    def _fill(self, item: QTreeWidgetItem, view) -> None:
        pct = f"{int(view.fraction * 100):3d}%  " if view.state == JobState.RUNNING else ""
        item.setText(0, pct + view.status_text)
        item.setText(1, view.prompt_text)
        item.setText(2, (view.frames or "all").replace(":", "–"))
        item.setText(3, os.path.basename(view.input))
        item.setText(4, view.id)
        colour = {JobState.RUNNING: theme.RESULT, JobState.DONE: theme.OK, JobState.FAILED: theme.ERROR,
                  JobState.CANCELLED: theme.DIM}.get(view.state, theme.TEXT)
        item.setForeground(0, colour)
        item.setToolTip(0, view.status_text)
        item.setToolTip(1, "\n".join(view.prompts))  # the column a long prompt is elided in; every prompt

    def _update_one(self, job: str) -> None:
        view = self.session.jobs.get(job)
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item is not None and item.data(0, Qt.ItemDataRole.UserRole) == job and view is not None:
                self._fill(item, view)
                break
        else:
            self.rebuild()
            return
        self._enable()

    def _enable(self) -> None:
        job = self.selected()
        view = self.session.jobs.get(job) if job else None
        queued = view is not None and view.state == JobState.QUEUED
        self.up.setEnabled(queued)
        self.down.setEnabled(queued)
        self.cancel.setEnabled(view is not None and not view.terminal)
        self.retry.setEnabled(view is not None and view.state in RETRYABLE_STATES)
        self.remove.setEnabled(view is not None and view.state != JobState.RUNNING)
        self.export.setEnabled(view is not None and view.state == JobState.DONE)
