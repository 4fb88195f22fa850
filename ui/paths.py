"""Where the panel keeps its own things: platform conventions, never the working directory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bridge import folders


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

    def create(self) -> PanelDirs:
        self.data.mkdir(parents=True, exist_ok=True)
        self.config.mkdir(parents=True, exist_ok=True)
        return self


def panel_dirs(explicit: str | os.PathLike | None = None) -> PanelDirs:
    """One folder for both when given (--data-dir or $TOKENFLOW_PANEL_DIR), else the user dirs."""
    given = explicit or folders.override(folders.PANEL_DIR_ENV)
    if given:
        root = Path(given).expanduser().absolute()
        return PanelDirs(data=root, config=root)
    # The panel's own subfolder of the user folders; $TOKENFLOW_CONFIG_DIR does not move it (never has).
    return PanelDirs(data=folders.platform_data_dir() / "panel", config=folders.platform_config_dir() / "panel")
