"""A dark, compact look from the editing world (grading-suite greys, one amber accent)."""

from __future__ import annotations

from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication

ACCENT = QColor("#e8a33d")  # marks, playhead, the primary action
RESULT = QColor("#4fb3d9")  # what the edit made
ERROR = QColor("#e0605a")
OK = QColor("#6cc070")
BG = QColor("#1b1c1e")
PANEL = QColor("#242528")
BASE = QColor("#141516")
TEXT = QColor("#d6d7d9")
DIM = QColor("#8b8e94")

STYLE = f"""
QWidget {{ font-size: 9pt; }}
QMainWindow::separator {{ background: {BG.name()}; width: 3px; height: 3px; }}
QDockWidget {{ titlebar-close-icon: none; }}
QDockWidget::title {{ background: {PANEL.name()}; padding: 3px 6px; color: {DIM.name()}; text-transform: uppercase; }}
QToolButton, QPushButton {{ background: #2e3034; border: 1px solid #3a3d42; border-radius: 3px; padding: 3px 8px;
    color: {TEXT.name()}; }}
QToolButton#mode {{ padding: 3px 6px; border-radius: 0; }}
QToolButton:hover, QPushButton:hover {{ background: #383b40; }}
QToolButton:checked {{ background: #4a3a22; border-color: {ACCENT.name()}; color: #ffd79a; }}
QPushButton:disabled, QToolButton:disabled {{ color: #5b5e63; background: #26272a; }}
QPushButton#primary {{ background: {ACCENT.name()}; color: #1b1c1e; border: 1px solid #f0b860; font-weight: 600; }}
QPushButton#primary:disabled {{ background: #5a4a33; color: #2a2620; }}
QPushButton#danger {{ border-color: #7a3d3a; }}
QPushButton#danger:enabled {{ background: #4a2826; color: #ffc4c0; }}
QLineEdit, QPlainTextEdit, QSpinBox, QDoubleSpinBox, QComboBox {{ background: {BASE.name()}; border: 1px solid #34373c;
    border-radius: 3px; padding: 2px 4px; selection-background-color: #5a4520; }}
QLineEdit:focus, QPlainTextEdit:focus, QSpinBox:focus, QDoubleSpinBox:focus {{ border-color: {ACCENT.name()}; }}
QProgressBar {{ background: {BASE.name()}; border: 1px solid #34373c; border-radius: 3px; height: 12px;
    text-align: center; color: {TEXT.name()}; }}
QProgressBar::chunk {{ background: {RESULT.name()}; border-radius: 2px; }}
QHeaderView::section {{ background: {PANEL.name()}; color: {DIM.name()}; border: none; padding: 3px 6px; }}
QTreeWidget, QListWidget {{ background: {BASE.name()}; border: 1px solid #2c2e32; alternate-background-color: #191a1c; }}
QTreeWidget::item:selected, QListWidget::item:selected {{ background: #3d3222; color: #ffe2b0; }}
QLabel#timecode {{ font-family: "DejaVu Sans Mono", monospace; font-size: 15pt; color: {ACCENT.name()}; }}
QLabel#dim {{ color: {DIM.name()}; }}
QLabel#banner {{ background: #4a2826; color: #ffd0cc; padding: 6px 10px; border-radius: 3px; }}
QLabel#section {{ color: {DIM.name()}; font-weight: 600; text-transform: uppercase; }}
QStatusBar {{ background: {PANEL.name()}; color: {DIM.name()}; }}
"""


def apply_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    pal = QPalette()
    pal.setColor(QPalette.ColorRole.Window, BG)
    pal.setColor(QPalette.ColorRole.WindowText, TEXT)
    pal.setColor(QPalette.ColorRole.Base, BASE)
    pal.setColor(QPalette.ColorRole.AlternateBase, PANEL)
    pal.setColor(QPalette.ColorRole.Text, TEXT)
    pal.setColor(QPalette.ColorRole.Button, PANEL)
    pal.setColor(QPalette.ColorRole.ButtonText, TEXT)
    pal.setColor(QPalette.ColorRole.Highlight, ACCENT.darker(160))
    pal.setColor(QPalette.ColorRole.HighlightedText, QColor("#fff3dd"))
    pal.setColor(QPalette.ColorRole.ToolTipBase, PANEL)
    pal.setColor(QPalette.ColorRole.ToolTipText, TEXT)
    pal.setColor(QPalette.ColorRole.PlaceholderText, DIM)
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor("#5b5e63"))
    app.setPalette(pal)
    font = QFont("DejaVu Sans")
    font.setPointSizeF(9)
    app.setFont(font)
    app.setStyleSheet(STYLE)
