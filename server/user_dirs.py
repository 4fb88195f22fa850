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


CONFIG_DIR_ENV = "TOKENFLOW_CONFIG_DIR"


def default_config_dir() -> Path:
    """The user's settings (the model registry, the service's serve.env): TOKENFLOW_CONFIG_DIR or the user config dir."""
    override = os.environ.get(CONFIG_DIR_ENV)
    return Path(override) if override else Path(platformdirs.user_config_dir("tokenflow"))


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache as huggingface_hub and diffusers find it (HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME),
    read when asked rather than at import so a changed environment is honoured."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"
