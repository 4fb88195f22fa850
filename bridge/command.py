"""`Command`: how to start this project's `tokenflow` in its own environment.

The command line room makes them (`cli/launch.py`, the one place that knows how the
project's Python is started with a subcommand); lower rooms are handed them: the
installers write them into service units, desktop entries and editor launchers, the
editor scripts run them, the panel starts its local server with one. Standard library
only, like the handoff module whose environment rule it shares.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from bridge.editors.handoff import child_environment


@dataclass(frozen=True)
class Command:
    """An argv with absolute paths only, and what must be set in the environment for it."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # e.g. a checkout's PYTHONPATH

    @property
    def executable(self) -> str:
        return self.argv[0]

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """`base` (default: this process's environment) with this command's settings on top.

        The host's own Python settings (an editor's PYTHONHOME) must not leak into the
        project's interpreter; a PYTHONPATH of the command goes first.
        """
        return child_environment(self.env, base)

    def to_dict(self) -> dict[str, object]:
        """What an editor launcher records (it reads `argv` and `env` back as plain values)."""
        return {"argv": list(self.argv), "env": dict(self.env)}


# What a room below the command line is handed: `launcher("serve", "--bind", ...)`.
Launcher = Callable[..., Command]
