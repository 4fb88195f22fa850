"""Pins where a user's things are (bridge/folders.py and the rooms' layouts on top of it).

Users' data must be found where earlier versions put it: every folder and every override
below is a promise (docs/install.md's table), not a detail to tidy.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bridge import folders
from bridge.wire import local
from server.paths import resolve_data_dir
from ui.paths import panel_dirs

OVERRIDES = ("TOKENFLOW_DATA_DIR", "TOKENFLOW_CACHE_DIR", "TOKENFLOW_CONFIG_DIR", "TOKENFLOW_RUNTIME_DIR",
             "TOKENFLOW_PANEL_DIR")

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the XDG layout is Linux's")


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The XDG base folders in a test folder, and no TokenFlow override set."""
    for name in OVERRIDES:
        monkeypatch.delenv(name, raising=False)
    for var, sub in (("XDG_DATA_HOME", "share"), ("XDG_CONFIG_HOME", "config"), ("XDG_CACHE_HOME", "cache"),
                     ("XDG_RUNTIME_DIR", "run")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    (tmp_path / "run").mkdir(mode=0o700)
    return tmp_path


def test_the_override_names_are_the_documented_ones() -> None:
    assert (folders.DATA_DIR_ENV, folders.CACHE_DIR_ENV, folders.CONFIG_DIR_ENV, folders.RUNTIME_DIR_ENV,
            folders.PANEL_DIR_ENV) == OVERRIDES
    assert folders.APP_NAME == "tokenflow"


@linux_only
def test_platform_folders(xdg: Path) -> None:
    root = xdg.resolve()
    assert resolve_data_dir().root == root / "share" / "tokenflow"
    assert resolve_data_dir().database == root / "share" / "tokenflow" / "jobs.sqlite3"
    assert folders.inversion_cache_dir() == xdg / "cache" / "tokenflow" / "inversions"
    assert folders.config_dir() == xdg / "config" / "tokenflow"
    assert local.local_keys().folder == xdg / "config" / "tokenflow" / "local-keys"
    assert local.runtime_dir() == xdg / "run" / "tokenflow"
    assert local.default_endpoint() == f"ipc://{xdg / 'run' / 'tokenflow' / 'server.sock'}"
    panel = panel_dirs()
    assert panel.history == xdg / "share" / "tokenflow" / "panel" / "history.sqlite"
    assert panel.presets == xdg / "config" / "tokenflow" / "panel" / "prompt_presets.json"


def test_overrides(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (xdg / "d").mkdir()
    (xdg / "d-link").symlink_to(xdg / "d")
    monkeypatch.setenv("TOKENFLOW_DATA_DIR", str(xdg / "d-link"))
    monkeypatch.setenv("TOKENFLOW_CACHE_DIR", str(xdg / "c"))
    monkeypatch.setenv("TOKENFLOW_CONFIG_DIR", str(xdg / "k"))
    monkeypatch.setenv("TOKENFLOW_RUNTIME_DIR", str(xdg / "r"))
    monkeypatch.setenv("TOKENFLOW_PANEL_DIR", str(xdg / "p"))
    assert resolve_data_dir().root == (xdg / "d").resolve()  # links resolved: jobs record absolute paths
    assert resolve_data_dir(xdg / "flag").root == (xdg / "flag").resolve()  # --data-dir wins
    assert folders.inversion_cache_dir() == xdg / "c"  # the cache itself, no inversions/ below it
    assert folders.config_dir() == xdg / "k"
    assert local.local_keys().folder == xdg / "k" / "local-keys"
    assert local.runtime_dir() == xdg / "r"
    assert panel_dirs().history == xdg / "p" / "history.sqlite"
    assert panel_dirs().presets == xdg / "p" / "prompt_presets.json"
    assert panel_dirs(xdg / "flag").presets == xdg / "flag" / "prompt_presets.json"  # --data-dir wins


@linux_only
def test_an_empty_override_is_unset(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OVERRIDES:
        monkeypatch.setenv(name, "")
    assert folders.config_dir() == xdg / "config" / "tokenflow"
    assert folders.inversion_cache_dir() == xdg / "cache" / "tokenflow" / "inversions"
    assert resolve_data_dir().root == (xdg / "share" / "tokenflow").resolve()


@linux_only
def test_the_panel_folders_ignore_the_config_override(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The panel has always used the platform folders unless $TOKENFLOW_PANEL_DIR says otherwise."""
    monkeypatch.setenv("TOKENFLOW_CONFIG_DIR", str(xdg / "k"))
    (xdg / "d").mkdir()
    (xdg / "d-link").symlink_to(xdg / "d")
    monkeypatch.setenv("TOKENFLOW_DATA_DIR", str(xdg / "d-link"))
    assert panel_dirs().presets == xdg / "config" / "tokenflow" / "panel" / "prompt_presets.json"
    assert panel_dirs().history == xdg / "share" / "tokenflow" / "panel" / "history.sqlite"
