"""The one way to start this environment's `tokenflow` with a subcommand.

Everything that starts the project's own Python (the editor launchers, the handoff's
auto-started server and panel, the panel's local server, the service unit and the
desktop entry) gets its command from `tokenflow_command`; rooms below the command line
are handed the result (`bridge.command.Command`) and never name this package.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bridge.command import Command

CHECKOUT = Path(__file__).resolve().parents[1]


def tokenflow_command(*args: str, python: Path | None = None, windows: bool | None = None) -> Command:
    """`tokenflow ARGS` as the environment of `python` (default: this one) runs it, whatever the PATH.

    The console script beside the interpreter is preferred (what pip installs); without one
    (running from a checkout) the interpreter runs the package, and the checkout is put on
    PYTHONPATH because a launcher does not start in it.
    """
    python = Path(sys.executable) if python is None else python
    windows = sys.platform == "win32" if windows is None else windows
    script = python.parent / ("tokenflow.exe" if windows else "tokenflow")
    if script.is_file():
        return Command([str(script), *args])
    env = {"PYTHONPATH": str(CHECKOUT)} if (CHECKOUT / "pyproject.toml").is_file() else {}
    return Command([str(python), "-m", "cli", *args], env)  # cli/__main__.py
