"""`tokenflow install blender`: the TokenFlow add-on for Blender's Video Sequence Editor.

One file, `tokenflow_vse.py`, in `scripts/addons` of every Blender version's user
folder found. Blender 3.4.1 makes `<config>/<major.minor>/` only when its preferences
are saved, not when it starts, so with no such folder the installer asks the `blender`
on PATH for its version and makes that version's folder itself (Blender reads add-ons
from it whether or not it made it). A legacy add-on, not an extension: Blender 3.x has no extensions, and 4.2
to 5.x still load add-ons from that folder. It records this environment's interpreter
and bridge folder; Blender's Python needs nothing beyond its standard library.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from bridge.installers import InstallContext, InstallError, InstallResult, TargetStatus, tokenflow_command, xdg_dir
from bridge.installers.owned import is_owned, remove_owned, write_owned
from bridge.installers.templates import render

SUMMARY = "Strip > TokenFlow: Edit with a Prompt in Blender's Video Sequence Editor (3.x to 5.x)"
NAME = "blender"
ADDON_FILE = "tokenflow_vse.py"
TEMPLATE = "blender/tokenflow_vse.py.in"
EDITORS_DIR = Path(__file__).resolve().parents[1] / "editors"  # the standard-library modules the launcher loads
_VERSION = re.compile(r"^\d+\.\d+$")


def config_root(ctx: InstallContext) -> Path:
    """Where Blender keeps one folder per version (BLENDER_USER_CONFIG-style overrides aside)."""
    if ctx.system == "Darwin":
        return ctx.home / "Library" / "Application Support" / "Blender"
    if ctx.system == "Windows":
        appdata = Path(ctx.env["APPDATA"]) if ctx.env.get("APPDATA") else ctx.home / "AppData" / "Roaming"
        return appdata / "Blender Foundation" / "Blender"
    return xdg_dir(ctx, "XDG_CONFIG_HOME", ".config") / "blender"


def version_dirs(ctx: InstallContext) -> list[Path]:
    root = config_root(ctx)
    if not root.is_dir():
        return []
    found = [d for d in root.iterdir() if d.is_dir() and _VERSION.match(d.name)]
    return sorted(found, key=lambda d: tuple(int(x) for x in d.name.split(".")))


def addon_paths(ctx: InstallContext) -> list[Path]:
    return [d / "scripts" / "addons" / ADDON_FILE for d in version_dirs(ctx)]


def blender_on_path(ctx: InstallContext) -> str | None:
    """"3.4" for the `blender` on the user's PATH (`blender --version`), or None when there is none."""
    executable = shutil.which("blender", path=ctx.env.get("PATH"))
    if executable is None:
        return None
    try:
        out = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"^Blender (\d+)\.(\d+)", out, re.MULTILINE)
    return f"{match.group(1)}.{match.group(2)}" if match else None


def _render(ctx: InstallContext) -> str:
    return render(TEMPLATE, handoff=repr(tokenflow_command(ctx, "handoff").to_dict()), editors=repr(str(EDITORS_DIR)))


def install(ctx: InstallContext) -> InstallResult:
    paths = addon_paths(ctx)
    made = None
    if not paths:
        made = blender_on_path(ctx)
        if made is None:
            raise InstallError(
                f"No Blender user folder in {config_root(ctx)} and no `blender` on PATH to ask for its version. "
                "Blender makes its folder when you save its preferences (Blender 3.x does not make it at start): "
                "start Blender, Edit > Preferences > Save Preferences, quit it, and run `tokenflow install blender` "
                "again.")
        paths = [config_root(ctx) / made / "scripts" / "addons" / ADDON_FILE]
    for path in paths:  # refuse before writing anything, so nothing is half installed
        if path.exists() and not is_owned(path) and not ctx.force:
            raise InstallError(f"{path} exists and was not written by tokenflow; move it away, "
                               "or pass --force to replace it.")
    result = InstallResult(NAME)
    text = _render(ctx)
    for path in paths:
        write_owned(path, text, ctx, result)
    versions = ", ".join(p.parents[2].name for p in paths)
    result.notes.append(f"Installed for Blender {versions}. In Blender: Edit > Preferences > Add-ons, search "
                        "'TokenFlow' and tick it; then in the Video Sequencer select a movie strip and use "
                        "Strip > TokenFlow: Edit with a Prompt.")
    result.notes.append(f"The add-on runs TokenFlow from {ctx.python}; install again if you move that environment "
                        "or after a new Blender version has saved its preferences for the first time.")
    if made is not None:
        result.notes.append(f"Blender {made} (the `blender` on PATH) had no user folder yet: made "
                            f"{config_root(ctx) / made} for the add-on. Other Blender versions: save their "
                            "preferences once, then install again.")
    return result


def uninstall(ctx: InstallContext) -> InstallResult:
    result = InstallResult(NAME)
    for path in addon_paths(ctx):
        remove_owned(path, ctx, result)
    if not result.removed and not result.notes:
        result.notes.append(f"Nothing to remove: no TokenFlow add-on in {config_root(ctx)}.")
    return result


def status(ctx: InstallContext) -> TargetStatus:
    paths = addon_paths(ctx)
    present = [p for p in paths if p.exists()]
    if not present:
        advice = ("not installed: `tokenflow install blender` adds the add-on to Blender "
                  + (", ".join(p.parents[2].name for p in paths) if paths else "(the `blender` on PATH)") + ".")
        return TargetStatus(NAME, False, [], advice)
    foreign = [p for p in present if not is_owned(p)]
    if foreign:
        return TargetStatus(NAME, False, present, f"{foreign[0]} was not written by tokenflow; "
                            "`tokenflow install blender --force` replaces it.")
    missing = [p.parents[2].name for p in paths if not p.exists()]
    if missing or any(p.read_text(encoding="utf-8") != _render(ctx) for p in present):
        what = f"Blender {', '.join(missing)} has no add-on yet" if missing else \
            "the add-on runs another environment (or an older version)"
        return TargetStatus(NAME, True, present, f"{what}: `tokenflow install blender` updates it.")
    return TargetStatus(NAME, True, present)
