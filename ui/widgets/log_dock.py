"""The log of a server this panel started."""

from __future__ import annotations

from PySide6.QtGui import QFont
from PySide6.QtWidgets import QPlainTextEdit, QWidget

from ui.model.local_server import LocalServer


class ServerLog(QPlainTextEdit):
    def __init__(self, server: LocalServer, parent: QWidget | None = None):
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMaximumBlockCount(5000)
        font = QFont("DejaVu Sans Mono")
        font.setPointSizeF(8)
        self.setFont(font)
        self.setPlaceholderText("The log of a server started from this panel shows here.")
        for line in server.lines:
            self.appendPlainText(line)
        server.log_line.connect(self.appendPlainText)
