"""The user's own folders (data, config, cache, runtime) and their environment overrides, in one place.

Every room asks here rather than calling platformdirs with its own app name, so the server,
the panel, the command line and the wire agree on where a user's things are. The rooms keep
their own layouts inside these folders (the server's DataDir, the panel's PanelDirs, the
wire's socket and local keys). Paths come from platform conventions, never the working
directory; the overrides exist for tests and service units.

Standard library and platformdirs only: clients inside an editor load this (via bridge.wire.local).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import platformdirs

APP_NAME = "tokenflow"

# The overrides. Each replaces the folder it names; the platform folder is used when unset or empty.
DATA_DIR_ENV = "TOKENFLOW_DATA_DIR"  # the server's job store, job files, outputs
CACHE_DIR_ENV = "TOKENFLOW_CACHE_DIR"  # the inversion cache itself (not the cache folder above it)
CONFIG_DIR_ENV = "TOKENFLOW_CONFIG_DIR"  # model registry, serve.env, local-keys/
RUNTIME_DIR_ENV = "TOKENFLOW_RUNTIME_DIR"  # the server's ipc:// socket
PANEL_DIR_ENV = "TOKENFLOW_PANEL_DIR"  # the panel's history and presets, both in one folder


def override(env: str) -> Path | None:
    """The folder an environment variable names, or None when it is unset or empty."""
    value = os.environ.get(env)
    return Path(value) if value else None


# --- the platform's folders for this app (no override applied) ---


def platform_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME))


def platform_config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME))


def platform_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir(APP_NAME))


def platform_runtime_dir() -> Path:
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset, then falls back
        warnings.simplefilter("ignore")
        return Path(platformdirs.user_runtime_dir(APP_NAME))


# --- the folders the rooms use: override, else platform ---


def data_dir() -> Path:
    """$TOKENFLOW_DATA_DIR, else the user data folder; absolute with links resolved (the server records it)."""
    env = override(DATA_DIR_ENV)
    return env.expanduser().resolve() if env else platform_data_dir().resolve()


def config_dir() -> Path:
    """The user's settings (model registry, serve.env, local keys): $TOKENFLOW_CONFIG_DIR or the user config folder."""
    return override(CONFIG_DIR_ENV) or platform_config_dir()


def inversion_cache_dir() -> Path:
    """The inversion cache shared by `tokenflow edit` and the server: $TOKENFLOW_CACHE_DIR or CACHE/inversions."""
    return override(CACHE_DIR_ENV) or platform_cache_dir() / "inversions"


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


def runtime_dir_path() -> Path:
    """Where the ipc:// socket lives ($TOKENFLOW_RUNTIME_DIR or the platform's), without creating it."""
    return override(RUNTIME_DIR_ENV) or platform_runtime_dir()


def app_folders() -> tuple[Path, ...]:
    """The program's own folders besides the server's data: settings and keys, caches, the socket.

    Never a destination for a job's output (server/output_roots.py), even inside an allowed folder
    such as the home folder: a job that wrote there could replace keys, the model registry or
    cached inversions. Absolute, links resolved.
    """
    found = (config_dir(), platform_cache_dir(), inversion_cache_dir(), runtime_dir_path())
    return tuple(dict.fromkeys(path.expanduser().resolve() for path in found))
