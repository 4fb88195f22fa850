"""`tokenflow install TARGET`, `tokenflow uninstall TARGET` and `tokenflow install --list`.

The targets live in `bridge.installers` (one module each); a target whose module is not
part of this version is listed as not available rather than breaking the command.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from bridge.installers import TARGET_MODULES, InstallContext, InstallError, InstallResult, TargetStatus, load_target
from cli.launch import tokenflow_command


def register(subparsers) -> None:
    targets = ", ".join(TARGET_MODULES)
    install = subparsers.add_parser(
        "install", help="put TokenFlow into the desktop, the login session or an editor",
        description="Install a TokenFlow integration. Targets: desktop (application menu entry for the panel), "
        "service (the server as a systemd user service), resolve (DaVinci Resolve script), blender (Blender "
        "add-on), ofx (the OpenFX effect for Resolve, Nuke, Natron...). "
        "A file of the same name that tokenflow did not write is never replaced without --force. "
        "`tokenflow install --list` shows what is installed.",
    )
    install.add_argument("target", nargs="?", metavar="TARGET", help=f"one of: {targets}")
    install.add_argument("--list", action="store_true", help="show every target and whether it is installed")
    install.add_argument("--json", action="store_true", help="with --list: machine-readable output")
    _common(install, "replace a file of the same name even if tokenflow did not write it")
    install.set_defaults(func=_install)

    uninstall = subparsers.add_parser(
        "uninstall", help="remove what `tokenflow install TARGET` put in",
        description="Remove a TokenFlow integration. Only files tokenflow wrote are removed; a file of the "
        "same name that is yours is kept unless you pass --force.",
    )
    uninstall.add_argument("target", metavar="TARGET", help=f"one of: {targets}")
    _common(uninstall, "also remove a file of that name that tokenflow did not write")
    uninstall.set_defaults(func=_uninstall)


def _common(parser: argparse.ArgumentParser, force_help: str) -> None:
    parser.add_argument("--force", action="store_true", help=force_help)
    parser.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")


def _install(args: argparse.Namespace) -> int:
    if args.list:
        return _list(args)
    if not args.target:
        print(f"Name what to install: tokenflow install TARGET (one of: {', '.join(TARGET_MODULES)}), "
              "or `tokenflow install --list`.", file=sys.stderr)
        return 2
    return _run(args, "install")


def _uninstall(args: argparse.Namespace) -> int:
    return _run(args, "uninstall")


def _run(args: argparse.Namespace, action: str) -> int:
    ctx = InstallContext.current(tokenflow_command, force=args.force, dry_run=args.dry_run)
    try:
        module = _module(args.target)
        if module is None:
            raise InstallError(f"The {args.target} target is not part of this version of tokenflow.")
        result: InstallResult = getattr(module, action)(ctx)
    except InstallError as exc:
        print(f"{action.capitalize()} {args.target}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # permissions, a full disk: say which file, leave the rest as it was
        print(f"{action.capitalize()} {args.target} failed: {exc}", file=sys.stderr)
        return 1
    _print_result(result, action, ctx.dry_run)
    return 0


def _module(target: str):
    try:
        return load_target(target)
    except ModuleNotFoundError as exc:
        if exc.name == TARGET_MODULES.get(target):
            return None  # built by another part of the project, not in this checkout yet
        raise


def _print_result(result: InstallResult, action: str, dry_run: bool) -> None:
    would = "Would " if dry_run else ""
    for path in result.written:
        print(f"{would}{'write' if dry_run else 'Wrote'} {path}")
    for path in result.removed:
        print(f"{would}{'remove' if dry_run else 'Removed'} {path}")
    for note in result.notes:
        print(note)
    if dry_run:
        print("Dry run: nothing was changed.")
    elif result.written or result.removed:
        print(f"{result.target}: {'installed' if action == 'install' else 'removed'}.")


def target_statuses(ctx: InstallContext) -> list[tuple[str, str, TargetStatus | None]]:
    """(target, summary, status) for every target; status None when its module is not in this version."""
    rows = []
    for target in TARGET_MODULES:
        module = _module(target)
        if module is None:
            rows.append((target, "", None))
        else:
            rows.append((target, module.SUMMARY, module.status(ctx)))
    return rows


def _list(args: argparse.Namespace) -> int:
    rows = target_statuses(InstallContext.current(tokenflow_command))
    if args.json:
        out = []
        for target, summary, status in rows:
            entry = {"target": target, "summary": summary, "available": status is not None}
            if status is not None:
                entry.update({k: ([str(p) for p in v] if k == "where" else v) for k, v in asdict(status).items()
                              if k != "target"})
            out.append(entry)
        print(json.dumps(out, indent=2))
        return 0
    for target, summary, status in rows:
        if status is None:
            print(f"{target:8} not available in this version")
            continue
        state = "installed" if status.installed else "not installed"
        print(f"{target:8} {state:13} {summary}")
        for path in status.where:
            print(f"{'':22} {path}")
        if status.advice:
            print(f"{'':22} {status.advice}")
    return 0
