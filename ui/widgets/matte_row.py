"""The matte controls of the prompt panel: load a matte, invert it, feather it, see it."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from bridge.wire.edit_params import form_range
from ui.model.matte import MatteModel


class MatteRow(QWidget):
    def __init__(self, matte: MatteModel, parent: QWidget | None = None):
        super().__init__(parent)
        self.matte = matte
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        top.addWidget(QLabel("Matte"))
        self.name = QLabel("whole frame")
        self.name.setObjectName("dim")
        top.addWidget(self.name, 1)
        load = QToolButton()
        load.setText("Load…")
        load.setToolTip("Edit only inside a matte: a movie, or one frame of an image sequence numbered like "
                        "the source (white or opaque = edited)")
        load.clicked.connect(self._load)
        alpha = QToolButton()
        alpha.setText("Alpha")
        alpha.setToolTip("Use the source's own alpha channel as the matte")
        alpha.clicked.connect(lambda: self._set(path="alpha"))
        clear = QToolButton()
        clear.setText("Clear")
        clear.clicked.connect(lambda: self._set(path=""))
        layout.addLayout(top)
        buttons = QHBoxLayout()  # a row of their own: the panel is narrow
        for button in (load, alpha, clear):
            buttons.addWidget(button, 1)
        layout.addLayout(buttons)
        bottom = QHBoxLayout()
        self.invert = QCheckBox("Invert")
        self.invert.toggled.connect(lambda on: self._set(invert=on))
        self.feather = QDoubleSpinBox()
        self.feather.setRange(*form_range("matte_feather"))
        self.feather.setSuffix(" px")
        self.feather.setToolTip("Soften the matte's edge over this many source pixels")
        self.feather.valueChanged.connect(lambda value: self._set(feather=value))
        self.overlay = QCheckBox("Overlay")
        self.overlay.setChecked(matte.overlay)
        self.overlay.toggled.connect(matte.show_overlay)
        bottom.addWidget(self.invert)
        bottom.addWidget(QLabel("Feather"))
        bottom.addWidget(self.feather, 1)
        bottom.addWidget(self.overlay)
        layout.addLayout(bottom)
        matte.changed.connect(self._show)
        self._show()

    def _set(self, path: str | None = None, invert: bool | None = None, feather: float | None = None) -> None:
        m = self.matte
        m.set(m.path if path is None else path, m.invert if invert is None else invert,
              m.feather if feather is None else feather)

    def _load(self) -> None:
        chosen, _ = QFileDialog.getOpenFileName(self, "Load a matte", "",
                                                "Mattes (*.mov *.mp4 *.mkv *.png *.tif *.tiff *.exr *.jpg);;All files (*)")
        if chosen:
            self._set(path=sequence_spec(chosen))

    def _show(self) -> None:
        m = self.matte
        self.name.setText({"": "whole frame", "alpha": "the source's alpha"}.get(m.path, Path(m.path).name))
        self.name.setToolTip(m.problem or m.path)
        self.invert.blockSignals(True)
        self.invert.setChecked(m.invert)
        self.invert.blockSignals(False)
        self.feather.blockSignals(True)
        self.feather.setValue(m.feather)
        self.feather.blockSignals(False)


def sequence_spec(chosen: str) -> str:
    """One picked frame of a numbered still sequence (roto.0012.png) -> its pattern (roto.%04d.png);
    a movie stays as it is."""
    path = Path(chosen)
    stem = path.stem
    digits = len(stem) - len(stem.rstrip("0123456789"))
    if path.suffix.lower() in (".mov", ".mp4", ".mkv", ".mxf", ".avi") or digits == 0:
        return chosen
    return str(path.with_name(f"{stem[:-digits]}%0{digits}d{path.suffix}"))
