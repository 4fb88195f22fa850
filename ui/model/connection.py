"""Is there a server, which, and what to tell the user when there is not."""

from __future__ import annotations

import enum

from PySide6.QtCore import QObject, Signal

from bridge.wire import protocol as p


class LinkState(str, enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    UNREACHABLE = "unreachable"
    STARTING = "starting"  # a server this panel started is loading


class ConnectionModel(QObject):
    changed = Signal()

    def __init__(self, endpoint: str, parent: QObject | None = None):
        super().__init__(parent)
        self.endpoint = endpoint
        self.state = LinkState.CONNECTING
        self.welcome: p.Welcome | None = None
        self.message = f"Connecting to {endpoint} ..."

    @property
    def connected(self) -> bool:
        return self.state is LinkState.CONNECTED

    @property
    def models(self) -> list[str]:
        return list(self.welcome.models) if self.welcome else []

    @property
    def model_problem(self) -> str | None:
        """Why the server's model could not be loaded (its `engine_state` said "failed: ..."), else None."""
        state = self.welcome.engine_state if self.welcome is not None and self.connected else ""
        return state.partition(":")[2].strip() or "no reason given" if state.startswith("failed") else None

    @property
    def healthy(self) -> bool:
        """Connected to a server that can run an edit: what the status dot's green means."""
        return self.connected and self.model_problem is None

    @property
    def summary(self) -> str:
        """One line for the status bar."""
        if self.state is LinkState.CONNECTED and self.welcome is not None:
            w = self.welcome
            if self.model_problem is not None:
                return (f"Server on {self.endpoint} cannot edit: its model did not load ({self.model_problem}). "
                        "Fix that (the Server log has the details) and restart the server.")
            engine = "" if w.engine_state in ("", "ready") else f", model {w.engine_state}"
            return f"Server {w.server or 'tokenflow'} on {self.endpoint} ({w.device or 'device ?'}{engine})"
        return self.message

    def on_connected(self, welcome: p.Welcome) -> None:
        self.state = LinkState.CONNECTED
        self.welcome = welcome
        self.message = ""
        self.changed.emit()

    def on_unreachable(self, message: str) -> None:
        if self.state is LinkState.STARTING:
            return  # the server we started is still loading; its log says how far it got
        self.state = LinkState.UNREACHABLE
        self.message = (f"No TokenFlow server answers at {self.endpoint}. Start one (Server > Start a local "
                        "server, or `tokenflow serve` in a terminal), or point the panel at one with --server.")
        self.changed.emit()

    def on_starting(self) -> None:
        self.state = LinkState.STARTING
        self.message = f"Starting a local server on {self.endpoint} (its log is in the Server log dock) ..."
        self.changed.emit()

    def on_server_exited(self, message: str) -> None:
        self.state = LinkState.UNREACHABLE
        self.message = message
        self.changed.emit()
