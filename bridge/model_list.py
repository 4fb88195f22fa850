"""The models this machine has, as `tokenflow models list --json` reports them, for the panel.

The bridge never imports the server, so the list comes from the command, run with this
environment's interpreter: the panel shows exactly what `tokenflow models list` shows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass


class ModelListError(Exception):
    """The list could not be read; the message says why and what to do."""


@dataclass(frozen=True)
class AvailableModel:
    id: str  # what --model (and a job's `model`) takes
    source: str  # "hub-cache", "pulled", "folder", "checkpoint"
    path: str
    size_bytes: int
    supported: bool
    note: str = ""
    revision: str = ""


@dataclass(frozen=True)
class ModelList:
    models: list[AvailableModel]
    default_model: str
    hub_cache: str
    registry: str

    @property
    def usable(self) -> list[AvailableModel]:
        return [m for m in self.models if m.supported]


def available_models(python: str | os.PathLike | None = None, timeout: float = 60.0,
                     env: dict[str, str] | None = None) -> ModelList:
    """Run `tokenflow models list --json` (with `python`, default: this interpreter) and parse it."""
    command = [str(python or sys.executable), "-m", "server.cli", "models", "list", "--json"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env=env if env is not None else dict(os.environ))
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelListError(f"`tokenflow models list` did not run ({exc}); run it in a terminal to see why.") from exc
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise ModelListError(f"`tokenflow models list` failed: {last}")
    try:
        raw = json.loads(done.stdout)
        return ModelList([AvailableModel(**m) for m in raw["models"]], raw["default_model"], raw["hub_cache"],
                         raw["registry"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelListError(f"`tokenflow models list --json` gave output this version cannot read ({exc}).") from exc

