"""Where the panel keeps its own things: platform conventions, never the working directory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

PANEL_DIR_ENV = "TOKENFLOW_PANEL_DIR"


@dataclass(frozen=True)
class PanelDirs:
    data: Path  # history database, its thumbnails
    config: Path  # prompt presets, settings

    @property
    def history(self) -> Path:
        return self.data / "history.sqlite"

    @property
    def presets(self) -> Path:
        return self.config / "prompt_presets.json"

    def create(self) -> "PanelDirs":
        self.data.mkdir(parents=True, exist_ok=True)
        self.config.mkdir(parents=True, exist_ok=True)
        return self


def panel_dirs(explicit: str | os.PathLike | None = None) -> PanelDirs:
    """One folder for both when given (--data-dir or $TOKENFLOW_PANEL_DIR), else the user dirs."""
    root = explicit or os.environ.get(PANEL_DIR_ENV)
    if root:
        root = Path(root).expanduser().absolute()
        return PanelDirs(data=root, config=root)
    return PanelDirs(data=Path(platformdirs.user_data_dir("tokenflow")) / "panel",
                     config=Path(platformdirs.user_config_dir("tokenflow")) / "panel")
