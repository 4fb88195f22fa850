"""Per-user folders from platform conventions (never the working directory)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

CACHE_DIR_ENV = "TOKENFLOW_CACHE_DIR"


def default_cache_dir() -> Path:
    """Inversion cache shared by `tokenflow edit` and the server: TOKENFLOW_CACHE_DIR or the user cache dir."""
    override = os.environ.get(CACHE_DIR_ENV)
    return Path(override) if override else Path(platformdirs.user_cache_dir("tokenflow")) / "inversions"
