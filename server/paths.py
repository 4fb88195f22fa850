"""Where the server keeps its state: platform conventions, overridable for tests."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "tokenflow"
# Tests and service units point the server elsewhere without touching the user's data.
DATA_DIR_ENV = "TOKENFLOW_DATA_DIR"


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def database(self) -> Path:
        return self.root / "jobs.sqlite3"

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    def job(self, job_id: str) -> Path:
        return self.jobs / job_id

    def create(self) -> "DataDir":
        for p in (self.root, self.jobs, self.outputs):
            p.mkdir(parents=True, exist_ok=True)
        return self


def resolve_data_dir(explicit: str | os.PathLike | None = None) -> DataDir:
    """--data-dir, else $TOKENFLOW_DATA_DIR, else the user data directory."""
    if explicit:
        return DataDir(Path(explicit).expanduser().resolve())
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return DataDir(Path(env).expanduser().resolve())
    return DataDir(Path(platformdirs.user_data_dir(APP_NAME)).resolve())
