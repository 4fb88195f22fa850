"""`tokenflow install resolve`: the Workspace > Scripts > TokenFlow launcher for DaVinci Resolve.

One file, `TokenFlow.py`, in the per-user `Fusion/Scripts/Utility` folder Resolve reads
for the OS (Studio, and the free edition up to 21.0: from 21.1 the free edition lists no
Python scripts there, see docs/editors.md). It records this environment's interpreter
and bridge folder; it needs nothing but the standard library in Resolve's Python.
"""

from __future__ import annotations

from pathlib import Path

from bridge.installers import InstallContext, InstallError, InstallResult, TargetStatus, tokenflow_command
from bridge.installers.owned import is_owned, remove_owned, write_owned
from bridge.installers.templates import render

SUMMARY = "Workspace > Scripts > TokenFlow in DaVinci Resolve (Studio; free edition up to 21.0)"
NAME = "resolve"
SCRIPT_FILE = "TokenFlow.py"
TEMPLATE = "resolve/TokenFlow.py.in"
EDITORS_DIR = Path(__file__).resolve().parents[1] / "editors"  # the standard-library modules the launcher loads


def resolve_support_dir(ctx: InstallContext) -> Path:
    """Resolve's per-user folder that holds `Fusion/` (where it looks for user scripts)."""
    if ctx.system == "Darwin":
        return ctx.home / "Library" / "Application Support" / "Blackmagic Design" / "DaVinci Resolve"
    if ctx.system == "Windows":
        appdata = Path(ctx.env["APPDATA"]) if ctx.env.get("APPDATA") else ctx.home / "AppData" / "Roaming"
        return appdata / "Blackmagic Design" / "DaVinci Resolve" / "Support"
    return ctx.home / ".local" / "share" / "DaVinciResolve"


def script_path(ctx: InstallContext) -> Path:
    return resolve_support_dir(ctx) / "Fusion" / "Scripts" / "Utility" / SCRIPT_FILE


def _render(ctx: InstallContext) -> str:
    return render(TEMPLATE, handoff=repr(tokenflow_command(ctx, "handoff").to_dict()), editors=repr(str(EDITORS_DIR)))


def install(ctx: InstallContext) -> InstallResult:
    if not (EDITORS_DIR / "resolve.py").is_file():
        raise InstallError(f"{EDITORS_DIR / 'resolve.py'} is missing; reinstall tokenflow-editor.")
    result = InstallResult(NAME)
    found = resolve_support_dir(ctx).is_dir()
    write_owned(script_path(ctx), _render(ctx), ctx, result)
    result.notes.append("In DaVinci Resolve, on the Edit page: put the playhead over a clip (or set in/out marks "
                        "around clips), then Workspace > Scripts > TokenFlow. Restart Resolve if it was open.")
    if not found:
        result.notes.append(f"DaVinci Resolve's user folder {resolve_support_dir(ctx)} did not exist yet: the script "
                            "is in place for when Resolve is installed and started once.")
    result.notes.append(f"The script runs TokenFlow from {ctx.python}; install again if you move that environment.")
    return result


def uninstall(ctx: InstallContext) -> InstallResult:
    result = InstallResult(NAME)
    remove_owned(script_path(ctx), ctx, result)
    if not result.removed and not result.notes:
        result.notes.append(f"Nothing to remove: no TokenFlow script at {script_path(ctx)}.")
    return result


def status(ctx: InstallContext) -> TargetStatus:
    path = script_path(ctx)
    if not path.exists():
        return TargetStatus(NAME, False, [], "not installed: `tokenflow install resolve` adds Workspace > Scripts > "
                            "TokenFlow to DaVinci Resolve.")
    if not is_owned(path):
        return TargetStatus(NAME, False, [path], f"{path} was not written by tokenflow; "
                            "`tokenflow install resolve --force` replaces it.")
    if path.read_text(encoding="utf-8") != _render(ctx):
        return TargetStatus(NAME, True, [path], "the script runs another environment (or an older version): "
                            "`tokenflow install resolve` updates it to this one.")
    return TargetStatus(NAME, True, [path])
