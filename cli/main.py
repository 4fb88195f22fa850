"""The `tokenflow` command: one entry point, subcommands registered by module.

Each subcommand module of this package exposes `register(subparsers)`, which adds its
parser and sets `func` (a callable taking the parsed args and returning an exit code).
Modules are imported lazily per subcommand group so `tokenflow submit` never imports
torch. Only modules of this room are named here: the rooms below never import upwards.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

# subcommand name -> module that registers it. Import is deferred until needed.
SUBCOMMAND_MODULES: dict[str, str] = {
    "edit": "cli.edit",
    "models": "cli.models",
    "serve": "cli.serve",
    "cluster": "cli.cluster",
    "submit": "cli.jobs",
    "jobs": "cli.jobs",
    "queue": "cli.queue",
    "formats": "cli.media",
    "probe": "cli.media",
    "panel": "cli.panel",
    "install": "cli.install",
    "uninstall": "cli.install",
    "doctor": "cli.doctor",
    "handoff": "cli.handoff",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokenflow",
        description="Text-driven, temporally consistent video editing (TokenFlow).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    seen: set[str] = set()
    for name, module_name in SUBCOMMAND_MODULES.items():
        if only is not None and name != only:
            continue
        if module_name in seen:
            continue
        seen.add(module_name)
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    # Only import the module of the subcommand asked for; full help imports all.
    only = first if first in SUBCOMMAND_MODULES else None
    parser = build_parser(only)
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # inside the try: a closed pipe shows here, not in the interpreter's exit
        return code
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`tokenflow probe CLIP | head -1`): that is how pipes end, not
        # an error to report. Point stdout at /dev/null so the interpreter's own flush at exit
        # cannot raise again, and exit as a process killed by SIGPIPE would.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
