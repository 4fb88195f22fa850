"""Files `tokenflow install` owns: written only where no foreign file stands, removed only if ours.

A file is ours when it carries `OWNED_MARK`; a user's own launcher, unit or add-on of the
same name is never replaced or deleted unless they pass --force.
"""

from __future__ import annotations

import os
from pathlib import Path

from bridge.installers import OWNED_MARK, InstallContext, InstallError, InstallResult


def is_owned(path: Path) -> bool:
    try:
        return OWNED_MARK in path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return False


def write_owned(path: Path, text: str, ctx: InstallContext, result: InstallResult, *, mode: int = 0o644) -> None:
    """Write `text` (which must carry OWNED_MARK) to `path`, refusing to replace a file we did not write."""
    if OWNED_MARK not in text:
        raise ValueError(f"installer text for {path} lacks the ownership mark")
    if path.is_symlink() or (path.exists() and not is_owned(path) and not ctx.force):
        raise InstallError(f"{path} exists and was not written by tokenflow; move it away, "
                           "or pass --force to replace it.")
    result.written.append(path)
    if ctx.dry_run:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.chmod(partial, mode)
    os.replace(partial, path)


def remove_owned(path: Path, ctx: InstallContext, result: InstallResult) -> None:
    """Remove `path` only if we wrote it; a foreign file of the same name is reported and kept."""
    if not path.exists():
        return
    if not is_owned(path) and not ctx.force:
        result.notes.append(f"Kept {path}: it was not written by tokenflow.")
        return
    result.removed.append(path)
    if not ctx.dry_run:
        path.unlink()
