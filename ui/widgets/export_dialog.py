"""Pick an export preset and where to write it."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ui.model.export import ExportFormat, export_formats, export_target


class ExportDialog(QDialog):
    def __init__(self, source: str, first: int, last: int, folder: Path, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Export version")
        self.formats = export_formats()
        self.stem = f"{Path(source).stem}_tokenflow_{first}-{last}"
        self.folder = str(folder)  # the session's rule: --output-dir, else beside the source
        layout = QVBoxLayout(self)
        self.preset = QComboBox()
        for fmt in self.formats:
            self.preset.addItem(fmt.label, fmt.name)
        self.preset.currentIndexChanged.connect(self._preset_changed)
        layout.addWidget(QLabel("Preset"))
        layout.addWidget(self.preset)
        self.description = QLabel("")
        self.description.setWordWrap(True)
        self.description.setObjectName("dim")
        layout.addWidget(self.description)
        layout.addWidget(QLabel("Write to"))
        row = QHBoxLayout()
        self.path = QLineEdit()
        row.addWidget(self.path, 1)
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._browse)
        row.addWidget(browse)
        layout.addLayout(row)
        self.note = QLabel("")
        self.note.setObjectName("dim")
        self.note.setWordWrap(True)
        layout.addWidget(self.note)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self._preset_changed()

    def fmt(self) -> ExportFormat:
        return self.formats[max(0, self.preset.currentIndex())]

    def _preset_changed(self) -> None:
        fmt = self.fmt()
        self.description.setText(fmt.description)
        if fmt.kind == "movie":
            self.path.setText(str(Path(self.folder) / f"{self.stem}{fmt.extension}"))
            self.note.setText(f"A movie at the source's frame rate and timecode, written into {self.folder}.")
        else:
            self.path.setText(str(Path(self.folder) / self.stem))
            self.note.setText(f"A folder of {fmt.extension} images numbered with the source frame numbers, "
                              f"inside {self.folder}.")

    def _browse(self) -> None:
        fmt = self.fmt()
        if fmt.kind == "movie":
            path, _ = QFileDialog.getSaveFileName(self, "Export to", self.path.text(), f"*{fmt.extension}")
        else:
            path = QFileDialog.getExistingDirectory(self, "Export into folder", self.folder)
        if path:
            self.path.setText(path)

    def target(self) -> Path:
        fmt = self.fmt()
        return export_target(fmt, Path(self.path.text()).expanduser(), self.stem)

    def accept(self) -> None:
        target = self.target()
        if target.exists() or (self.fmt().kind == "images" and target.parent.exists() and any(target.parent.iterdir())):
            # Never overwrite what is there: the user picks another name.
            self.note.setText(f"{target if target.exists() else target.parent} already exists and is not empty: "
                              "choose another name.")
            return
        super().accept()
