"""`tokenflow install desktop`: a launcher for `tokenflow panel` in the desktop's application menu.

On Linux (and other freedesktop desktops) this is a Desktop Entry in
`$XDG_DATA_HOME/applications` plus its icon; the entry runs this environment's own
`tokenflow` by absolute path, so it works whatever PATH the desktop session has.
macOS and Windows have no such file a tool may drop in safely: there the user is told
how to make a shortcut to the same command.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from bridge.installers import InstallContext, InstallError, InstallResult, TargetStatus, tokenflow_command, xdg_dir
from bridge.installers.owned import is_owned, remove_owned, write_owned
from bridge.installers.templates import render

SUMMARY = "a TokenFlow entry in the desktop's application menu that opens the panel (Linux)"
NAME = "desktop"
ENTRY_FILE = "tokenflow-panel.desktop"
ICON_FILE = "tokenflow.svg"

# Desktop Entry Specification, "The Exec key": arguments holding these are quoted.
_RESERVED = re.compile(r"[\s\"'\\><~|&;$*?#()`]")


def entry_path(ctx: InstallContext) -> Path:
    return xdg_dir(ctx, "XDG_DATA_HOME", ".local/share") / "applications" / ENTRY_FILE


def icon_path(ctx: InstallContext) -> Path:
    return xdg_dir(ctx, "XDG_DATA_HOME", ".local/share") / "icons" / "hicolor" / "scalable" / "apps" / ICON_FILE


def exec_value(argv: list[str]) -> str:
    """An Exec= value: quoted by the Exec rules, then escaped as a desktop-file string."""
    words = []
    for arg in argv:
        if _RESERVED.search(arg):
            arg = '"' + re.sub(r'(["`$\\])', r"\\\1", arg) + '"'
        words.append(arg.replace("%", "%%"))
    # A string value escapes backslashes once more (so a quoted "\\" is written "\\\\").
    return " ".join(words).replace("\\", "\\\\")


def _manual_advice(ctx: InstallContext) -> str:
    command = " ".join(tokenflow_command(ctx, "panel").argv)
    if ctx.system == "Darwin":
        return ("macOS has no desktop entries: run `" + command + "` from Terminal, or make an app with "
                "Automator (New > Application > Run Shell Script, paste that command) and keep it in the Dock.")
    if ctx.system == "Windows":
        return ("Windows has no desktop entries: right-click the desktop > New > Shortcut and give it the "
                "location `" + command + "` (Start menu: put the shortcut in %APPDATA%\\Microsoft\\Windows\\"
                "Start Menu\\Programs).")
    return f"desktop entries are a Linux desktop feature; start the panel with `{command}`."


def _render_entry(ctx: InstallContext) -> str:
    command = tokenflow_command(ctx, "panel")
    argv = command.argv
    if command.env:
        argv = ["env", *(f"{k}={v}" for k, v in command.env.items()), *argv]
    # %f: a video opened with TokenFlow from the file manager arrives as the panel's clip argument.
    return render("linux/tokenflow-panel.desktop.in", exec=exec_value(argv) + " %f",
                  try_exec=exec_value([command.executable]), icon=str(icon_path(ctx)))


def _refresh_mime_cache(ctx: InstallContext, applications: Path) -> None:
    """Let file managers offer "Open With TokenFlow" for videos at once (desktop-file-utils; optional)."""
    tool = shutil.which("update-desktop-database", path=ctx.env.get("PATH"))
    if tool and not ctx.dry_run:
        try:
            subprocess.run([tool, str(applications)], capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            pass  # the menu entry works without it; only "Open With" may wait for the next login


def install(ctx: InstallContext) -> InstallResult:
    if ctx.system != "Linux":
        raise InstallError(_manual_advice(ctx))
    result = InstallResult(NAME)
    entry = entry_path(ctx)
    # Check both files before writing either, so a refusal leaves nothing half installed.
    for path in (entry, icon_path(ctx)):
        if path.exists() and not is_owned(path) and not ctx.force:
            raise InstallError(f"{path} exists and was not written by tokenflow; move it away, "
                               "or pass --force to replace it.")
    write_owned(icon_path(ctx), render("linux/" + ICON_FILE), ctx, result)
    write_owned(entry, _render_entry(ctx), ctx, result)
    _refresh_mime_cache(ctx, entry.parent)
    result.notes.append("TokenFlow is in the application menu (Sound & Video) and in a video's Open With menu; "
                        "it opens the panel. "
                        "Some desktops show a new entry only after logging out and in again.")
    return result


def uninstall(ctx: InstallContext) -> InstallResult:
    result = InstallResult(NAME)
    for path in (entry_path(ctx), icon_path(ctx)):
        remove_owned(path, ctx, result)
    if result.removed:
        _refresh_mime_cache(ctx, entry_path(ctx).parent)
    if not result.removed and not result.notes:
        result.notes.append(f"Nothing to remove: no TokenFlow desktop entry at {entry_path(ctx)}.")
    return result


def status(ctx: InstallContext) -> TargetStatus:
    if ctx.system != "Linux":
        return TargetStatus(NAME, False, [], _manual_advice(ctx))
    entry = entry_path(ctx)
    if not entry.exists():
        return TargetStatus(NAME, False, [], "`tokenflow install desktop` adds the panel to the "
                            "application menu.")
    if not is_owned(entry):
        return TargetStatus(NAME, False, [entry], f"{entry} was not written by tokenflow; "
                            "`tokenflow install desktop --force` replaces it.")
    current = _render_entry(ctx)
    if entry.read_text(encoding="utf-8") != current:
        # e.g. the environment moved, or the entry comes from another environment.
        return TargetStatus(NAME, True, [entry], "the entry differs from what this environment would write "
                            "(another environment, or an older version): `tokenflow install desktop` updates it.")
    return TargetStatus(NAME, True, [entry, icon_path(ctx)] if icon_path(ctx).exists() else [entry])

