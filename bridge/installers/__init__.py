"""What `tokenflow install TARGET` puts into other programs, and takes out again.

Each target is a module in this package (listed in `TARGET_MODULES`) exposing

    SUMMARY: str                                   # one line for `tokenflow install --help`
    def install(ctx: InstallContext) -> InstallResult
    def uninstall(ctx: InstallContext) -> InstallResult
    def status(ctx: InstallContext) -> TargetStatus  # for `tokenflow doctor`

Targets write only files that carry `OWNED_MARK` (in a comment of the file's own
syntax) and remove only such files, so a user's own launcher, unit or add-on of the
same name is never replaced or deleted: `owned.write_owned` and `owned.remove_owned`
enforce that.
Standard library only: this runs wherever the bridge runs.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from bridge.command import Command, Launcher

# Present in every file an installer writes; uninstall removes nothing without it.
OWNED_MARK = "installed by `tokenflow install`"

TARGET_MODULES: dict[str, str] = {
    "desktop": "bridge.installers.desktop",  # panel launcher entry (Linux .desktop)
    "service": "bridge.installers.service",  # per-user server service (systemd user unit)
    "resolve": "bridge.installers.resolve",  # DaVinci Resolve Workspace > Scripts launcher
    "blender": "bridge.installers.blender",  # Blender VSE add-on
    "ofx": "bridge.installers.ofx",  # OpenFX effect bundle (C++, built with CMake)
}


class InstallError(Exception):
    """A target cannot be installed or removed; the message says what to do."""


@dataclass(frozen=True)
class InstallContext:
    """Everything an installer may depend on, passed in so tests can point it at a temporary home."""

    python: Path  # interpreter of the project's environment; launchers record it
    home: Path
    system: str  # platform.system(): "Linux", "Darwin" or "Windows"
    launcher: Launcher  # makes `tokenflow ARGS` commands (cli/launch.py's tokenflow_command)
    env: Mapping[str, str] = field(default_factory=dict)  # APPDATA, XDG_* and friends
    force: bool = False  # replace files even when they lack OWNED_MARK (the user asked, in so many words)
    dry_run: bool = False  # say what would change, change nothing

    @classmethod
    def current(cls, launcher: Launcher, *, force: bool = False, dry_run: bool = False) -> InstallContext:
        return cls(python=Path(sys.executable), home=Path.home(), system=platform.system(), launcher=launcher,
                   env=dict(os.environ), force=force, dry_run=dry_run)


@dataclass
class InstallResult:
    target: str
    written: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the user does next, in plain words


@dataclass(frozen=True)
class TargetStatus:
    target: str
    installed: bool
    where: list[Path]
    advice: str = ""  # what to do when it is missing or broken; empty when all is well


def tokenflow_command(ctx: InstallContext, *args: str) -> Command:
    """`tokenflow ARGS` as the environment of `ctx.python` runs it, whatever the PATH of the launcher."""
    return ctx.launcher(*args, python=ctx.python, windows=ctx.system == "Windows")


def xdg_dir(ctx: InstallContext, variable: str, default: str) -> Path:
    """An XDG base directory of `ctx` (a relative value is invalid by the spec and ignored)."""
    value = ctx.env.get(variable, "")
    return Path(value) if value and Path(value).is_absolute() else ctx.home / default


def load_target(name: str) -> ModuleType:
    if name not in TARGET_MODULES:
        raise InstallError(f"Unknown install target {name!r}; choose one of: {', '.join(TARGET_MODULES)}.")
    return importlib.import_module(TARGET_MODULES[name])
