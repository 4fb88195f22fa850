"""The panel's window: viewer and transport in the middle, the edit form and history on the
right, the queue and the server log below; every action on a key."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from bridge.wire.local import can_start_here
from ui.model.connection import LinkState
from ui.model.history import entry_key
from ui.model.session import PanelSession
from ui.model.viewer import CompareMode
from ui.widgets import theme
from ui.widgets.edit_panel import EditPanel
from ui.widgets.export_dialog import ExportDialog
from ui.widgets.history_view import HistoryView
from ui.widgets.log_dock import ServerLog
from ui.widgets.queue_view import QueueView
from ui.widgets.transport import Scrubber, ThumbStrip, TransportBar
from ui.widgets.viewer import Viewer

VIDEO_FILTER = "Video (*.mp4 *.mov *.mkv *.mxf *.avi *.webm *.m4v);;All files (*)"


class MainWindow(QMainWindow):
    def __init__(self, session: PanelSession):
        super().__init__()
        self.session = session
        self.setWindowTitle("TokenFlow")
        self.resize(1400, 860)
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks)
        self.actions_by_name = self._make_actions()

        self.viewer = Viewer(session)
        self.viewer.files_dropped.connect(lambda paths: session.open_clip(paths[0]))
        self.banner = QLabel("")
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.setVisible(False)
        self.banner.setToolTip("Click to dismiss")
        self.banner.mousePressEvent = lambda event: self.banner.setVisible(False)
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        column.addWidget(self.banner)
        column.addWidget(self.viewer, 1)
        column.addWidget(ThumbStrip(session))
        column.addWidget(Scrubber(session))
        self.transport = TransportBar(session, self.actions_by_name)
        column.addWidget(self.transport)
        self.setCentralWidget(central)

        self.edit_panel = EditPanel(session, self.actions_by_name["submit"], self.actions_by_name["cancel"])
        self.history_view = HistoryView(session)
        self.queue_view = QueueView(session)
        self.log_view = ServerLog(session.server)
        self.history_view.export_requested.connect(self.export)
        self.queue_view.export_requested.connect(self.export)
        # The edit form and history run the window's full height on the right, so the queue
        # under the viewer gets its own height instead of what the form leaves over.
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.docks = {
            "edit": self._dock("Edit", self.edit_panel, Qt.DockWidgetArea.RightDockWidgetArea),
            "history": self._dock("History", self.history_view, Qt.DockWidgetArea.RightDockWidgetArea),
            "queue": self._dock("Queue", self.queue_view, Qt.DockWidgetArea.BottomDockWidgetArea),
            "log": self._dock("Server log", self.log_view, Qt.DockWidgetArea.BottomDockWidgetArea),
        }
        self.tabifyDockWidget(self.docks["queue"], self.docks["log"])
        self.docks["queue"].raise_()
        self.resizeDocks([self.docks["edit"], self.docks["history"]], [520, 300], Qt.Orientation.Vertical)
        self.resizeDocks([self.docks["queue"]], [self.queue_view.preferred_height()], Qt.Orientation.Vertical)
        self.resizeDocks([self.docks["edit"]], [340], Qt.Orientation.Horizontal)

        self._make_menus()
        self._make_status_bar()
        session.notice.connect(self.notify)
        session.connection.changed.connect(self._connection_changed)
        session.clip.clip_changed.connect(self._clip_changed)
        session.viewer.changed.connect(self._mode_changed)
        session.playback.changed.connect(self._playback_changed)
        session.export_progress.connect(self._export_progress)
        session.export_finished.connect(lambda paths, error: self.export_bar.setVisible(False))
        session.server.started.connect(lambda: self.docks["log"].raise_())
        self._connection_changed()
        self._mode_changed()
        self.viewer.setFocus()

    # --- building ---

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(area, dock)
        return dock

    def _make_actions(self) -> dict[str, QAction]:
        s = self.session
        clip, play = s.clip, s.playback
        table = [
            ("open", "Open clip…", "Ctrl+O", self.open_dialog),
            ("quit", "Quit", "Ctrl+Q", self.close),
            ("play", "Play ▶", "L", play.forward),
            ("play_backward", "◀ Play", "J", play.backward),
            ("stop", "Stop ■", "K", play.stop),
            ("toggle", "Play / stop", "Space", play.toggle),
            ("back", "◀|", "Left", lambda: (play.stop(), clip.step(-1))),
            ("forward", "|▶", "Right", lambda: (play.stop(), clip.step(1))),
            ("back10", "Back 10 frames", "Shift+Left", lambda: (play.stop(), clip.step(-10))),
            ("forward10", "Forward 10 frames", "Shift+Right", lambda: (play.stop(), clip.step(10))),
            ("start", "|◀◀", "Home", lambda: (play.stop(), clip.seek(0))),
            ("end", "▶▶|", "End", lambda: (play.stop(), clip.seek(clip.last_frame))),
            ("mark_in", "In  I", "I", clip.set_in),
            ("mark_out", "Out  O", "O", clip.set_out),
            ("go_in", "Go to in", "Shift+I", lambda: clip.seek(clip.range[0])),
            ("go_out", "Go to out", "Shift+O", lambda: clip.seek(clip.range[1])),
            ("clear_marks", "Clear in and out", "Alt+X", clip.clear_marks),
            ("loop", "Loop playback", "Ctrl+L", lambda: setattr(play, "loop", not play.loop)),
            ("mode_source", "Source", "1", lambda: s.viewer.set_mode(CompareMode.SOURCE)),
            ("mode_result", "Result", "2", lambda: s.viewer.set_mode(CompareMode.RESULT)),
            ("mode_wipe", "Wipe", "3", lambda: s.viewer.set_mode(CompareMode.WIPE)),
            ("mode_side", "Side by side", "4", lambda: s.viewer.set_mode(CompareMode.SIDE)),
            ("mode_variants", "Variants", "5", lambda: s.viewer.set_mode(CompareMode.VARIANTS)),
            ("submit", "Submit", "Ctrl+Return", self.submit),
            ("cancel", "Cancel the version on screen", "Ctrl+.", s.cancel_current),
            ("prompt", "Edit the prompt", "Ctrl+P", lambda: self.edit_panel.prompt.setFocus()),
            ("export", "Export the version on screen…", "Ctrl+E", lambda: self.export(entry_key(s.viewer.job, s.viewer.variant) if s.viewer.job else None)),
            ("start_server", "Start a local server", "", s.start_local_server),
            ("queue_up", "Move the selected job up", "Ctrl+Up",
             lambda: self._move_selected(-1)),
            ("queue_down", "Move the selected job down", "Ctrl+Down",
             lambda: self._move_selected(1)),
        ]
        actions = {}
        group = QActionGroup(self)
        for name, text, key, slot in table:
            action = QAction(text, self)
            if key:
                action.setShortcut(QKeySequence(key))
                action.setToolTip(f"{text.strip()} ({key})")
            action.triggered.connect(lambda checked=False, fn=slot: fn())
            self.addAction(action)
            actions[name] = action
            if name.startswith("mode_"):
                action.setCheckable(True)
                group.addAction(action)
        actions["loop"].setCheckable(True)
        return actions

    def _make_menus(self) -> None:
        a = self.actions_by_name
        menus = {
            "&File": ["open", "export", None, "quit"],
            "&Mark": ["mark_in", "mark_out", "go_in", "go_out", "clear_marks"],
            "&Playback": ["toggle", "play", "stop", "play_backward", None, "back", "forward", "back10", "forward10",
                          "start", "end", None, "loop"],
            "&View": ["mode_source", "mode_result", "mode_wipe", "mode_side", "mode_variants"],
            "&Edit": ["prompt", "submit", "cancel"],
            "&Queue": ["queue_up", "queue_down"],
            "&Server": ["start_server"],
        }
        for title, names in menus.items():
            menu = self.menuBar().addMenu(title)
            for name in names:
                if name is None:
                    menu.addSeparator()
                else:
                    menu.addAction(a[name])
        view = self.menuBar().actions()[4].menu()
        assert isinstance(view, QMenu)  # PySide6 types QAction.menu() as a QObject
        view.addSeparator()
        for dock in self.docks.values():
            view.addAction(dock.toggleViewAction())

    def _make_status_bar(self) -> None:
        bar = self.statusBar()
        self.connection_dot = QLabel("●")
        self.connection_label = QLabel("")
        self.start_button = QPushButton("Start a local server")
        self.start_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.start_button.clicked.connect(self.session.start_local_server)
        self.export_bar = QProgressBar()
        self.export_bar.setMaximumWidth(180)
        self.export_bar.setFormat("export %v/%m")
        self.export_bar.setVisible(False)
        holder = QWidget()
        row = QHBoxLayout(holder)
        row.setContentsMargins(6, 0, 6, 0)
        row.addWidget(self.connection_dot)
        row.addWidget(self.connection_label, 1)
        row.addWidget(self.start_button)
        # Permanent: a passing message (left) never hides the connection state.
        bar.addPermanentWidget(self.export_bar)
        bar.addPermanentWidget(holder)

    # --- state -> widgets ---

    def _connection_changed(self) -> None:
        c = self.session.connection
        colour = {LinkState.CONNECTED: theme.OK if c.healthy else theme.ERROR,
                  LinkState.UNREACHABLE: theme.ERROR}.get(c.state, theme.ACCENT)
        self.connection_dot.setStyleSheet(f"color: {colour.name()};")
        self.connection_label.setText(c.summary)
        self.connection_label.setToolTip(c.message or c.summary)
        offer = c.state is LinkState.UNREACHABLE and can_start_here(self.session.endpoint) \
            and not self.session.server.running
        self.start_button.setVisible(offer)
        self.actions_by_name["start_server"].setEnabled(offer)

    def _clip_changed(self) -> None:
        current = self.session.clip.current
        self.setWindowTitle(f"{current.name} — TokenFlow" if current else "TokenFlow")

    def _mode_changed(self) -> None:
        mode = self.session.viewer.mode
        self.actions_by_name[f"mode_{mode.value}"].setChecked(True)

    def _playback_changed(self) -> None:
        speed = self.session.playback.speed
        self.actions_by_name["toggle"].setText("Stop" if speed else "Play")

    def _export_progress(self, done: int, total: int) -> None:
        self.export_bar.setVisible(True)
        self.export_bar.setRange(0, total)
        self.export_bar.setValue(done)

    def notify(self, level: str, text: str) -> None:
        if level == "error":
            self.banner.setText(text)
            self.banner.setVisible(True)
        else:
            self.statusBar().showMessage(text, 6000)

    # --- user actions that need a dialog ---

    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a clip", str(Path.home()), VIDEO_FILTER)
        if path:
            self.session.open_clip(path)

    def submit(self) -> None:
        self.banner.setVisible(False)
        self.session.submit(self.edit_panel.form())
        self.viewer.setFocus()

    def _move_selected(self, delta: int) -> None:
        job = self.queue_view.selected()
        if job:
            self.session.move(job, delta)

    def export_dialog(self, source: str, first: int, last: int) -> ExportDialog:
        return ExportDialog(source, first, last, self.session.export_folder(source), self)

    def export(self, job: str | None) -> None:
        if not job:
            self.notify("error", "No version to export: pick one in the history or the queue.")
            return
        version = self.session.history.get(job)
        view = self.session.jobs.get(job)
        if version is not None:
            source, first, last = version.clip, version.first, version.last
        elif view is not None:
            source, first, last = view.input, view.first_frame or 0, view.last_frame or 0
        else:
            return
        dialog = self.export_dialog(source, first, last)
        if dialog.exec():
            self.session.export(job, dialog.fmt(), dialog.target())

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.session.close()
        super().closeEvent(event)


def delayed(ms: int, fn) -> None:
    QTimer.singleShot(ms, fn)
